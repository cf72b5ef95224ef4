//! Streams an upload body into its partial file: the chunks the network hands over are
//! gathered to about a MiB and passed, without a copy, to a blocking thread that hashes and
//! writes them while the next MiB arrives.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Write};
use tokio::task::JoinHandle;

/// Bytes gathered before each hand-over: one blocking-pool hop per MiB, not per chunk.
const BLOCK: usize = 1024 * 1024;

/// The partial file, with what keeps other writers of the upload out (its lock). The lock
/// travels with the file into every blocking operation, so one left running by a request
/// that went away (its future dropped) still holds the next request off until it ends.
pub struct Held {
    pub file: File,
    _lock: Box<dyn Send>,
}

impl Held {
    pub fn new(file: File, lock: impl Send + 'static) -> Held {
        Held {
            file,
            _lock: Box::new(lock),
        }
    }
}

type Written = io::Result<(Held, Sha256)>;

enum Slot {
    Idle(Held, Sha256),
    Busy(JoinHandle<Written>),
    /// A write failed; the error was returned once already.
    Broken,
}

pub struct Sink {
    slot: Slot,
    gathered: Vec<Bytes>,
    gathered_len: usize,
    /// Bytes handed to the sink so far, written or not yet.
    received: u64,
}

fn joined(r: Result<Written, tokio::task::JoinError>) -> Written {
    r.map_err(|e| io::Error::other(format!("an upload write stopped: {e}")))?
}

impl Sink {
    /// The file must be positioned where the body goes.
    pub fn new(held: Held) -> Sink {
        Sink {
            slot: Slot::Idle(held, Sha256::new()),
            gathered: Vec::new(),
            gathered_len: 0,
            received: 0,
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub async fn push(&mut self, chunk: Bytes) -> io::Result<()> {
        self.received += chunk.len() as u64;
        self.gathered_len += chunk.len();
        self.gathered.push(chunk);
        if self.gathered_len >= BLOCK {
            self.hand_over().await?;
        }
        Ok(())
    }

    /// Waits for the write in flight and gets the file and hash back.
    async fn settle(&mut self) -> Written {
        match std::mem::replace(&mut self.slot, Slot::Broken) {
            Slot::Idle(held, hasher) => Ok((held, hasher)),
            Slot::Busy(handle) => joined(handle.await),
            Slot::Broken => Err(io::Error::other("an earlier upload write failed")),
        }
    }

    async fn hand_over(&mut self) -> io::Result<()> {
        let (mut held, mut hasher) = self.settle().await?;
        let chunks = std::mem::take(&mut self.gathered);
        self.gathered_len = 0;
        self.slot = Slot::Busy(tokio::task::spawn_blocking(move || {
            for chunk in &chunks {
                hasher.update(chunk);
            }
            write_all_vectored(&mut held.file, &chunks)?;
            Ok((held, hasher))
        }));
        Ok(())
    }

    /// Writes what is gathered; answers the file and the SHA-256 of everything received.
    pub async fn finish(mut self) -> io::Result<(Held, [u8; 32])> {
        self.hand_over().await?;
        let (held, hasher) = self.settle().await?;
        Ok((held, hasher.finalize().into()))
    }

    /// Drops what is gathered and answers the file once no write is in flight.
    pub async fn abandon(mut self) -> io::Result<Held> {
        self.settle().await.map(|(held, _)| held)
    }
}

/// One `writev` per hand-over where the kernel takes it all: many small writes cost far
/// more in the page cache than one large one.
fn write_all_vectored(file: &mut File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs a file operation off the async workers and hands the file back.
pub async fn with_file(
    held: Held,
    op: impl FnOnce(&File) -> io::Result<()> + Send + 'static,
) -> io::Result<Held> {
    tokio::task::spawn_blocking(move || op(&held.file).map(|()| held))
        .await
        .map_err(|e| io::Error::other(format!("an upload file operation stopped: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test]
    async fn writes_and_hashes_every_chunk_in_order() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("body");
        let mut sink = Sink::new(Held::new(File::create(&path)?, ()));
        let mut all = Vec::new();
        // Uneven chunks that cross several hand-overs.
        for i in 0..300u32 {
            let chunk: Vec<u8> = (0..(7919 + i * 13)).map(|b| (b ^ i) as u8).collect();
            all.extend_from_slice(&chunk);
            sink.push(Bytes::from(chunk)).await?;
        }
        assert_eq!(sink.received(), all.len() as u64);
        let (_, digest) = sink.finish().await?;
        let mut on_disk = Vec::new();
        File::open(&path)?.read_to_end(&mut on_disk)?;
        assert_eq!(on_disk, all);
        assert_eq!(digest.as_slice(), Sha256::digest(&all).as_slice());
        Ok(())
    }

    #[tokio::test]
    async fn abandon_leaves_only_what_was_handed_over() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("body");
        let mut sink = Sink::new(Held::new(File::create(&path)?, ()));
        sink.push(Bytes::from(vec![1u8; BLOCK])).await?;
        sink.push(Bytes::from(vec![2u8; 10])).await?;
        let held = sink.abandon().await?;
        assert_eq!(held.file.metadata()?.len(), BLOCK as u64);
        Ok(())
    }

    #[tokio::test]
    async fn a_failed_write_is_an_error_and_the_sink_stays_failed() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("body");
        File::create(&path)?;
        // Opened read-only: every write fails, as on a full or failing disk.
        let mut sink = Sink::new(Held::new(File::open(&path)?, ()));
        sink.push(Bytes::from(vec![1u8; BLOCK])).await?;
        // The failure surfaces at the next hand-over or at the end, never silently.
        let next = sink.push(Bytes::from(vec![2u8; BLOCK])).await;
        assert!(next.is_err(), "the failed write was not reported");
        assert!(sink.finish().await.is_err(), "a broken sink finished");
        assert_eq!(std::fs::metadata(&path)?.len(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn a_write_left_running_by_a_dropped_request_keeps_the_lock_until_it_ends(
    ) -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let lock = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let Ok(guard) = lock.clone().try_lock_owned() else {
            panic!("a fresh lock");
        };
        let mut sink = Sink::new(Held::new(File::create(dir.path().join("body"))?, guard));
        // 64 MiB in flight, then the request's future is gone.
        sink.push(Bytes::from(vec![7u8; 64 * BLOCK])).await?;
        drop(sink);
        assert!(
            lock.try_lock().is_err(),
            "the orphaned write still holds the upload"
        );
        // The write ends, and with it the hold.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while lock.try_lock().is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the lock was never released"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            std::fs::metadata(dir.path().join("body"))?.len(),
            64 * BLOCK as u64
        );
        Ok(())
    }
}
