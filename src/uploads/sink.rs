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

type Written = io::Result<(File, Sha256)>;

enum Slot {
    Idle(File, Sha256),
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
    pub fn new(file: File) -> Sink {
        Sink {
            slot: Slot::Idle(file, Sha256::new()),
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
            Slot::Idle(file, hasher) => Ok((file, hasher)),
            Slot::Busy(handle) => joined(handle.await),
            Slot::Broken => Err(io::Error::other("an earlier upload write failed")),
        }
    }

    async fn hand_over(&mut self) -> io::Result<()> {
        let (mut file, mut hasher) = self.settle().await?;
        let chunks = std::mem::take(&mut self.gathered);
        self.gathered_len = 0;
        self.slot = Slot::Busy(tokio::task::spawn_blocking(move || {
            for chunk in &chunks {
                hasher.update(chunk);
            }
            write_all_vectored(&mut file, &chunks)?;
            Ok((file, hasher))
        }));
        Ok(())
    }

    /// Writes what is gathered; answers the file and the SHA-256 of everything received.
    pub async fn finish(mut self) -> io::Result<(File, [u8; 32])> {
        self.hand_over().await?;
        let (file, hasher) = self.settle().await?;
        Ok((file, hasher.finalize().into()))
    }

    /// Drops what is gathered and answers the file once no write is in flight.
    pub async fn abandon(mut self) -> io::Result<File> {
        self.settle().await.map(|(file, _)| file)
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
    file: File,
    op: impl FnOnce(&File) -> io::Result<()> + Send + 'static,
) -> io::Result<File> {
    tokio::task::spawn_blocking(move || op(&file).map(|()| file))
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
        let mut sink = Sink::new(File::create(&path)?);
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
        let mut sink = Sink::new(File::create(&path)?);
        sink.push(Bytes::from(vec![1u8; BLOCK])).await?;
        sink.push(Bytes::from(vec![2u8; 10])).await?;
        let file = sink.abandon().await?;
        assert_eq!(file.metadata()?.len(), BLOCK as u64);
        Ok(())
    }
}
