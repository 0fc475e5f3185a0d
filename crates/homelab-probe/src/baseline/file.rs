//! The compressed layer of a baseline file: one zstd frame (RFC 8878) with its content
//! checksum, holding the stream `model::baseline` defines.
//!
//! [`Reader`] decompresses from any `Read` and counts the compressed bytes it consumed, so an
//! error names the compressed offset where the decoder stopped: a truncated file (the frame
//! does not end), corruption (a bad block, a checksum that does not match), data after the
//! frame, or bytes that are not zstd at all. The errors travel through `io::Error` as a
//! [`StreamError`], which the baseline module takes back out (`StreamError::of`).

use std::io::{self, Read, Write};

use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};

/// The zstd level `baseline take` writes with: level 3 (zstd's default) finds the repeats of a
/// media tree (every season's listing is the one before with another number) in a 2 MiB
/// window; higher levels cost time for bytes nobody needs (docs/benchmarks.md).
pub const LEVEL: i32 = 3;

/// The largest window a baseline may ask of the decoder (2^24 = 16 MiB of memory). Level 3
/// writes 2^21; the cap keeps a hostile file from asking for gigabytes.
const WINDOW_LOG_MAX: u32 = 24;

/// The zstd frame magic number (RFC 8878, 3.1.1), little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Why the compressed stream could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The input does not start with a zstd frame.
    #[error("not a zstd stream (a baseline file is zstd-compressed; the first bytes are {0})")]
    NotZstd(String),
    /// The input ends inside the frame.
    #[error("truncated: the file ends at compressed byte {offset}, inside the zstd frame (a partial copy?)")]
    Truncated {
        /// Compressed bytes read.
        offset: u64,
    },
    /// The decoder refused the data.
    #[error("corrupt at compressed byte {offset}: {message}")]
    Corrupt {
        /// Compressed bytes consumed when the decoder stopped.
        offset: u64,
        /// The decoder's message.
        message: String,
    },
    /// Bytes follow the frame.
    #[error("data after the end of the zstd frame at compressed byte {offset}")]
    Trailing {
        /// Where the frame ended.
        offset: u64,
    },
    /// Reading the file failed.
    #[error("read error at compressed byte {offset}: {source}")]
    Read {
        /// Compressed bytes read before the failure.
        offset: u64,
        /// The error.
        source: io::Error,
    },
}

impl StreamError {
    /// The `StreamError` an `io::Error` from a [`Reader`] carries, if it carries one.
    pub fn of(e: &io::Error) -> Option<&StreamError> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<StreamError>())
    }
}

fn err(e: StreamError) -> io::Error {
    io::Error::other(e)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    InFrame,
    FrameDone,
    Done,
}

/// Decompresses one zstd frame from `R`, refusing truncation, corruption and trailing data.
pub struct Reader<R: Read> {
    inner: R,
    dec: Decoder<'static>,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Compressed bytes before `buf[0]`.
    base: u64,
    state: State,
}

impl<R: Read> Reader<R> {
    /// A reader of the frame in `inner`.
    pub fn new(inner: R) -> io::Result<Self> {
        let mut dec = Decoder::new()?;
        dec.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX))?;
        Ok(Reader {
            inner,
            dec,
            buf: vec![0; 1 << 16].into_boxed_slice(),
            pos: 0,
            len: 0,
            base: 0,
            state: State::Start,
        })
    }

    /// Compressed bytes consumed so far.
    pub fn compressed_offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Reads more compressed input; `false` at the end of the file.
    fn refill(&mut self) -> io::Result<bool> {
        self.base += self.len as u64;
        self.pos = 0;
        self.len = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => {
                    self.len = n;
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(err(StreamError::Read { offset: self.base, source })),
            }
        }
    }

    fn check_magic(&mut self) -> io::Result<()> {
        // The first four bytes, however the reads split them.
        let mut head = Vec::with_capacity(4);
        while head.len() < 4 {
            if self.pos == self.len && !self.refill()? {
                break;
            }
            let k = (4 - head.len()).min(self.len - self.pos);
            head.extend_from_slice(&self.buf[self.pos..self.pos + k]);
            self.pos += k;
        }
        if head != ZSTD_MAGIC {
            let shown = if head.is_empty() {
                "none: the file is empty".to_owned()
            } else {
                head.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
            };
            return Err(err(StreamError::NotZstd(shown)));
        }
        // Give the magic to the decoder, which expects the whole frame.
        let mut out = [0u8; 0];
        let mut ib = InBuffer::around(&ZSTD_MAGIC);
        let mut ob = OutBuffer::around(&mut out[..]);
        self.dec.run(&mut ib, &mut ob).map_err(|e| err(StreamError::Corrupt { offset: 0, message: e.to_string() }))?;
        Ok(())
    }
}

impl<R: Read> Read for Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Start => {
                    self.check_magic()?;
                    self.state = State::InFrame;
                }
                State::FrameDone => {
                    if self.pos < self.len || self.refill()? {
                        return Err(err(StreamError::Trailing { offset: self.compressed_offset() }));
                    }
                    self.state = State::Done;
                }
                State::InFrame => {
                    if self.pos == self.len && !self.refill()? {
                        // No more input: what the decoder still holds, else a truncated frame.
                        let mut ob = OutBuffer::around(&mut *out);
                        let mut ib = InBuffer::around(&[]);
                        let r = self.dec.run(&mut ib, &mut ob);
                        let n = ob.pos();
                        match r {
                            Ok(0) if n == 0 => {
                                self.state = State::FrameDone;
                                continue;
                            }
                            Ok(_) if n > 0 => return Ok(n),
                            Err(e) => {
                                let offset = self.compressed_offset();
                                return Err(err(StreamError::Corrupt { offset, message: e.to_string() }));
                            }
                            Ok(_) => return Err(err(StreamError::Truncated { offset: self.compressed_offset() })),
                        }
                    }
                    let mut ib = InBuffer::around(&self.buf[self.pos..self.len]);
                    let mut ob = OutBuffer::around(&mut *out);
                    let r = self.dec.run(&mut ib, &mut ob);
                    self.pos += ib.pos();
                    let n = ob.pos();
                    match r {
                        Err(e) => {
                            let offset = self.compressed_offset();
                            return Err(err(StreamError::Corrupt { offset, message: e.to_string() }));
                        }
                        Ok(0) => self.state = State::FrameDone,
                        Ok(_) => {}
                    }
                    if n > 0 {
                        return Ok(n);
                    }
                }
            }
        }
    }
}

/// A zstd writer for a baseline: level [`LEVEL`], with the content checksum; call
/// `finish()` to end the frame.
pub fn writer<W: Write>(w: W) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(w, LEVEL)?;
    enc.include_checksum(true)?;
    Ok(enc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut w = writer(Vec::new()).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Reader::new(bytes)?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn stream_err(r: io::Result<Vec<u8>>) -> String {
        let e = r.expect_err("must fail");
        StreamError::of(&e).unwrap_or_else(|| panic!("not a StreamError: {e}")).to_string()
    }

    #[test]
    fn round_trip_and_every_truncation_fails() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let z = compress(&data);
        assert_eq!(read_all(&z).unwrap(), data);
        for n in (0..z.len()).step_by(7).chain([z.len() - 1, z.len() - 4]) {
            let msg = stream_err(read_all(&z[..n]));
            assert!(
                msg.contains("truncated") || msg.contains("corrupt") || msg.contains("not a zstd"),
                "cut at {n}: {msg}"
            );
        }
    }

    #[test]
    fn corruption_trailing_data_and_other_files_are_named() {
        let data = b"homelab-probe baseline\n".repeat(1000);
        let z = compress(&data);
        // The checksum: a flipped byte in the last block's data.
        let mut bad = z.clone();
        let i = bad.len() - 8;
        bad[i] ^= 0xff;
        let msg = stream_err(read_all(&bad));
        assert!(msg.contains("corrupt at compressed byte"), "{msg}");
        let mut trailing = z.clone();
        trailing.extend_from_slice(b"junk");
        assert_eq!(
            stream_err(read_all(&trailing)),
            format!("data after the end of the zstd frame at compressed byte {}", z.len())
        );
        assert!(stream_err(read_all(b"version = 1\n")).contains("not a zstd stream"));
        assert!(stream_err(read_all(b"")).contains("empty"));
    }
}
