//! The threads that decode images (upload checks and thumbnails, downscales for OFSC): a
//! fixed few, each decode holding one of as many permits, run at a lowered scheduling
//! priority. Decoding is background work that may take a core for ~100 ms per photo; at
//! normal priority a burst of uploads would have it compete with receiving, hashing and
//! syncing the next ones. Niced, it takes what the request path leaves and catches up after.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("the image decoders have stopped")]
    Stopped,
    #[error("an image decode panicked")]
    Panicked,
}

#[derive(Debug)]
pub struct Decoder {
    jobs: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
}

/// Lowers the calling thread's priority (Linux nice values are per thread).
#[cfg(target_os = "linux")]
fn lower_priority(nice: i32) {
    // SAFETY: get/setpriority only read their integer arguments; `who = 0` is the calling
    // thread.
    if unsafe { libc::getpriority(libc::PRIO_PROCESS as _, 0) } >= nice {
        return; // already as low (a niced process): raising it back needs privileges
    }
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS as _, 0, nice) };
    if rc != 0 {
        tracing::warn!(nice, error = %std::io::Error::last_os_error(), "could not lower the decode threads' priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: i32) {}

impl Decoder {
    /// `nice` 0 keeps the threads at normal priority.
    pub fn start(threads: usize, nice: i32) -> std::io::Result<Decoder> {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("fieldsync-decode-{n}"))
                .spawn(move || {
                    if nice != 0 {
                        lower_priority(nice);
                    }
                    loop {
                        // The lock is released before the job runs.
                        let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match next {
                            Ok(job) => job(),
                            // Every sender is gone: the decoder was dropped.
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(Decoder {
            jobs,
            permits: Arc::new(Semaphore::new(threads)),
        })
    }

    /// Waits for a free decoder, then starts `work` on it. The answer arrives on the
    /// receiver, so a caller's timeout counts from the start of the decode, not the wait.
    pub async fn start_job<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<std::thread::Result<T>>, DecoderError> {
        let permit: OwnedSemaphorePermit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| DecoderError::Stopped)?;
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(AssertUnwindSafe(work));
            // The permit goes with the decode, not with the wait: a decode its caller gave
            // up on still holds its memory until it ends.
            drop(permit);
            let _ = tx.send(r);
        });
        self.jobs.send(job).map_err(|_| DecoderError::Stopped)?;
        Ok(rx)
    }

    /// Runs `work` on a decoder and waits for it.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, DecoderError> {
        Self::outcome(self.start_job(work).await?.await)
    }

    pub fn outcome<T>(
        received: Result<std::thread::Result<T>, oneshot::error::RecvError>,
    ) -> Result<T, DecoderError> {
        match received {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(_)) => Err(DecoderError::Panicked),
            Err(_) => Err(DecoderError::Stopped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn never_runs_more_jobs_at_once_than_it_has_threads() {
        let Ok(decoder) = Decoder::start(2, 5) else {
            panic!("decoder threads");
        };
        let decoder = Arc::new(decoder);
        let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut waiting = Vec::new();
        for _ in 0..8 {
            let (d, now, peak) = (decoder.clone(), now.clone(), peak.clone());
            waiting.push(tokio::spawn(async move {
                d.run(move || {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    now.fetch_sub(1, Ordering::SeqCst);
                    n
                })
                .await
            }));
        }
        for w in waiting {
            assert!(matches!(w.await, Ok(Ok(n)) if n >= 1));
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_decode_is_an_error_and_the_thread_lives_on() {
        let Ok(decoder) = Decoder::start(1, 0) else {
            panic!("decoder threads");
        };
        let r: Result<(), _> = decoder.run(|| panic!("bad image")).await;
        assert!(matches!(r, Err(DecoderError::Panicked)));
        assert!(matches!(decoder.run(|| 41 + 1).await, Ok(42)));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn decode_threads_run_niced() {
        let Ok(decoder) = Decoder::start(1, 7) else {
            panic!("decoder threads");
        };
        // SAFETY: getpriority reads the calling (decode) thread's nice value.
        let nice = decoder
            .run(|| unsafe { libc::getpriority(libc::PRIO_PROCESS as _, 0) })
            .await;
        assert!(matches!(nice, Ok(n) if n >= 7), "{nice:?}");
    }
}
