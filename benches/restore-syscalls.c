// The CPU time of each system call a baseline restore makes per change, against chown -R's one
// fchownat (benches/restore-profile.sh compiles and runs it; docs/benchmarks.md has the
// figures). One entry at a time, as a restore does, so descriptor numbers are reused.
//
// restore-syscalls [DIR [N]]: makes its own directory (mkdtemp under DIR, default /var/tmp),
// N files in it (default 20,000), chowns only those, and removes them. Needs root (chown).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILES 20000
#define CAPS "security.capability"
static char names[MAX_FILES][16];
static int N = MAX_FILES;

// CPU time of this thread: the machine is shared, wall time says little.
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

// getxattrat(2), Linux 6.13 (no libc wrapper yet).
struct xattr_args {
  unsigned long long value;
  unsigned int size;
  unsigned int flags;
};
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif

int main(int argc, char **argv) {
  char tmpl[4096];
  const char *parent = argc > 1 ? argv[1] : "/var/tmp";
  if (argc > 2) N = atoi(argv[2]);
  if (N < 1 || N > MAX_FILES) return fprintf(stderr, "N: 1 to %d\n", MAX_FILES), 2;
  if (snprintf(tmpl, sizeof tmpl, "%s/restore-syscalls.XXXXXX", parent) >= (int)sizeof tmpl) return 2;
  char *d = mkdtemp(tmpl);
  if (!d) return perror("mkdtemp"), 1;
  int dfd = open(d, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) return perror(d), 1;
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "f%06d", i);
    int f = openat(dfd, names[i], O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (f < 0) return perror(names[i]), 1;
    close(f);
  }
  char buf[256], p[64];
  unsigned u = 5000;
  long bad;
  double t;
  // Each case chowns to a new owner, so that every fchownat changes something.
#define CASE(label, ...)                        \
  u++, bad = 0, t = now();                      \
  for (int i = 0; i < N; i++) { __VA_ARGS__; } \
  printf("  %-58s %6.2f us%s\n", label, (now() - t) * 1e6 / N, bad ? "  (some calls failed)" : "");
#define NOCAPS(call) bad += (call) >= 0 || (errno != ENODATA && errno != EOPNOTSUPP)
#define CHECKED_OPEN                                                    \
  int f = openat(dfd, names[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);       \
  struct statx s;                                                       \
  bad += statx(f, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &s) != 0
#define CHOWN_CLOSE \
  bad += fchownat(f, "", u, u, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0; \
  close(f)

  for (int round = 1; round <= 3; round++) {
    printf("round %d (CPU time per entry, %d files)\n", round, N);
    CASE("chown -R's: fchownat(dir, name, NOFOLLOW)", bad += fchownat(dfd, names[i], u, u, AT_SYMLINK_NOFOLLOW) != 0);
    CASE("the walk's: statx(dir, name, NOFOLLOW)", {
      struct statx s;
      bad += statx(dfd, names[i], AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, &s) != 0;
    });
    CASE("checked: openat(O_PATH), statx(fd), fchownat(fd), close", { CHECKED_OPEN; CHOWN_CLOSE; });
    CASE("  + capabilities through /proc/self/fd/N (restore)", {
      CHECKED_OPEN;
      snprintf(p, sizeof p, "/proc/self/fd/%d", f);
      NOCAPS(getxattr(p, CAPS, buf, sizeof buf));
      CHOWN_CLOSE;
    });
    CASE("  + capabilities by name, getxattrat (Linux 6.13+)", {
      CHECKED_OPEN;
      struct xattr_args a = {(unsigned long)buf, sizeof buf, 0};
      NOCAPS(syscall(SYS_getxattrat, dfd, names[i], AT_SYMLINK_NOFOLLOW, CAPS, &a, sizeof a));
      CHOWN_CLOSE;
    });
    CASE("open(O_RDONLY|O_NONBLOCK), statx, fgetxattr, fchown, close", {
      int f = openat(dfd, names[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
      struct statx s;
      bad += statx(f, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_BTIME, &s) != 0;
      NOCAPS(fgetxattr(f, CAPS, buf, sizeof buf));
      bad += fchown(f, u, u) != 0;
      close(f);
    });
  }
  for (int i = 0; i < N; i++) unlinkat(dfd, names[i], 0);
  close(dfd);
  return rmdir(d) != 0;
}
