//! A small work-stealing pool for tree walks.
//!
//! Each worker owns a deque: it pushes the subdirectories it finds at the back and takes its
//! next job from the back too (depth first, so the directories it has just read, and their
//! file descriptors, are finished soon). An idle worker steals from the *front* of another's
//! deque: the oldest job, which is the highest in the tree and so usually the largest piece of
//! work. Jobs are whole directories (or chunks of a very large one), tens of microseconds at
//! least, so a mutex per deque costs nothing measurable; see docs/benchmarks.md for why this
//! beat a single shared stack and needs no dependency.
//!
//! The walk ends when no job is queued or running (`pending` reaches zero).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Deques, one per worker, and the count of jobs queued or running.
pub(crate) struct Pool<J> {
    queues: Vec<Mutex<VecDeque<J>>>,
    pending: AtomicUsize,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker that panicked mid-push leaves a consistent deque: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<J> Pool<J> {
    /// A pool for `workers` workers.
    pub(crate) fn new(workers: usize) -> Self {
        Pool {
            queues: (0..workers.max(1)).map(|_| Mutex::new(VecDeque::new())).collect(),
            pending: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Queues `job` on worker `me`'s deque.
    pub(crate) fn push(&self, me: usize, job: J) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        lock(&self.queues[me]).push_back(job);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = lock(&self.lock);
            self.wake.notify_one();
        }
    }

    /// Jobs queued or running.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }

    /// The next job for worker `me`: its own newest, else another's oldest; `None` when the
    /// walk is over. Every job returned must be followed by [`Pool::done`].
    pub(crate) fn next(&self, me: usize) -> Option<J> {
        let n = self.queues.len();
        loop {
            if let Some(j) = lock(&self.queues[me]).pop_back() {
                return Some(j);
            }
            for k in 1..n {
                if let Some(j) = lock(&self.queues[(me + k) % n]).pop_front() {
                    return Some(j);
                }
            }
            if self.pending.load(Ordering::SeqCst) == 0 {
                return None;
            }
            let g = lock(&self.lock);
            self.sleepers.fetch_add(1, Ordering::SeqCst);
            // Re-check under the lock so a push or the last `done` between the scan above and
            // the wait cannot be missed for long; the timeout bounds any race that remains.
            let empty = self.queues.iter().all(|q| lock(q).is_empty());
            if empty && self.pending.load(Ordering::SeqCst) != 0 {
                let _g = self.wake.wait_timeout(g, Duration::from_millis(2)).map(|(g, _)| g);
            }
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Marks one job returned by [`Pool::next`] (or pushed and then dropped) as finished.
    pub(crate) fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _g = lock(&self.lock);
            self.wake.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_job_runs_once_across_workers() {
        // A binary tree of jobs 16 levels deep: 2^17 - 1 jobs.
        let pool = Pool::new(4);
        pool.push(0, 0u32);
        let ran = AtomicU64::new(0);
        std::thread::scope(|s| {
            for me in 0..4 {
                let (pool, ran) = (&pool, &ran);
                s.spawn(move || {
                    while let Some(depth) = pool.next(me) {
                        ran.fetch_add(1, Ordering::Relaxed);
                        if depth < 16 {
                            pool.push(me, depth + 1);
                            pool.push(me, depth + 1);
                        }
                        pool.done();
                    }
                });
            }
        });
        assert_eq!(ran.load(Ordering::Relaxed), (1 << 17) - 1);
        assert_eq!(pool.pending(), 0);
    }
}
