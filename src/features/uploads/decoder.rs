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
    #[error("an image decode used more than its CPU time")]
    OverTime,
}

/// How much CPU time the decode thread running a job has used since the job started.
#[cfg(target_os = "linux")]
struct Meter {
    clock: libc::clockid_t,
    start: std::time::Duration,
}

#[cfg(target_os = "linux")]
impl Meter {
    fn read(clock: libc::clockid_t) -> Option<std::time::Duration> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out pointer; the clock is a decode thread's, and decode
        // threads live as long as the decoder a caller borrows while reading it.
        (unsafe { libc::clock_gettime(clock, &mut ts) } == 0).then(|| {
            std::time::Duration::new(
                ts.tv_sec.max(0) as u64,
                ts.tv_nsec.clamp(0, 999_999_999) as u32,
            )
        })
    }

    /// On the thread that runs the job.
    fn start() -> Option<Meter> {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: `pthread_self` is the calling thread; `clock` is a valid out pointer.
        if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } != 0 {
            return None;
        }
        Self::read(clock).map(|start| Meter { clock, start })
    }

    fn used(&self) -> Option<std::time::Duration> {
        Self::read(self.clock).map(|now| now.saturating_sub(self.start))
    }
}

/// Elsewhere, wall-clock time since the job started stands in for CPU time.
#[cfg(not(target_os = "linux"))]
struct Meter(std::time::Instant);

#[cfg(not(target_os = "linux"))]
impl Meter {
    fn start() -> Option<Meter> {
        Some(Meter(std::time::Instant::now()))
    }

    fn used(&self) -> Option<std::time::Duration> {
        Some(self.0.elapsed())
    }
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
    async fn start_job<T: Send + 'static>(
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

    /// Runs `work` on a decoder and waits for it, giving up (`OverTime`) once the decode has
    /// used `cpu` of CPU time. CPU time, not wall time: a niced decode on a busy machine may
    /// take long to finish without costing more, and must not be refused for it. A decode
    /// given up on still runs to its end, holding its permit (image decodes cannot be
    /// interrupted); its limits bound how long that is.
    pub async fn run_limited<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
        cpu: std::time::Duration,
    ) -> Result<T, DecoderError> {
        let meter: Arc<std::sync::OnceLock<Meter>> = Arc::default();
        let on_thread = meter.clone();
        let mut answer = self
            .start_job(move || {
                if let Some(m) = Meter::start() {
                    let _ = on_thread.set(m);
                }
                work()
            })
            .await?;
        let tick = (cpu / 4).clamp(
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(250),
        );
        loop {
            if let Ok(received) = tokio::time::timeout(tick, &mut answer).await {
                return Self::outcome(received);
            }
            let over = meter
                .get()
                .and_then(Meter::used)
                .is_some_and(|used| used > cpu);
            if over {
                // The thread sends the answer before it takes another job, so an answer
                // not here yet means the time read was this job's.
                return match answer.try_recv() {
                    Ok(r) => Self::outcome(Ok(r)),
                    Err(_) => Err(DecoderError::OverTime),
                };
            }
        }
    }

    fn outcome<T>(
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
                    std::thread::sleep(Duration::from_millis(50));
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

    #[tokio::test]
    async fn a_decode_is_given_up_on_past_its_cpu_time_not_its_wall_time() {
        let Ok(decoder) = Decoder::start(1, 0) else {
            panic!("decoder threads");
        };
        let limit = Duration::from_millis(30);
        // Sleeping costs no CPU: well past the limit in wall time, and still answered.
        let slept = decoder
            .run_limited(|| std::thread::sleep(Duration::from_millis(120)), limit)
            .await;
        assert!(slept.is_ok(), "{slept:?}");
        // Spinning does (long enough to pass the limit even on a loaded machine).
        let spun = decoder
            .run_limited(
                || {
                    let end = std::time::Instant::now() + Duration::from_secs(2);
                    let mut n = 0u64;
                    while std::time::Instant::now() < end {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                    n
                },
                limit,
            )
            .await;
        assert!(matches!(spun, Err(DecoderError::OverTime)), "{spun:?}");
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
