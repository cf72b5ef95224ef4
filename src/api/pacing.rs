//! Slow clients: a request body must arrive within `server.body_timeout_secs`, an upload's
//! at `server.upload_min_bytes_per_sec` or faster after a grace period, and one address
//! may hold at most `server.max_connections_per_address` connections. The request head's
//! own deadline is actix's `client_request_timeout` (`server.request_head_timeout_secs`).

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use bytes::Bytes;
use futures_util::Stream;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// How slowly a body may arrive.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The whole body of an ordinary request.
    pub body_timeout: Duration,
    /// An upload's average rate, in bytes per second, once `grace` has passed; 0 turns the
    /// floor off.
    pub upload_min_rate: u64,
    pub grace: Duration,
}

impl Pace {
    pub fn of(server: &crate::config::ServerSettings) -> Pace {
        Pace {
            body_timeout: Duration::from_secs(server.body_timeout_secs.max(1)),
            upload_min_rate: server.upload_min_bytes_per_sec,
            grace: Duration::from_secs(server.upload_rate_grace_secs),
        }
    }
}

/// The error a body stream ends with when its client was too slow; handlers see it as a
/// payload error whose kind is `TimedOut`.
fn too_slow(what: &str) -> PayloadError {
    PayloadError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        what.to_string(),
    ))
}

/// Whether an error from reading a body is this module's deadline.
pub fn timed_out(e: &PayloadError) -> bool {
    matches!(e, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

enum Rule {
    /// The body ends by then.
    Deadline,
    /// At least `rate` bytes a second on average, counted from `start + grace`.
    MinRate {
        start: Instant,
        grace: Duration,
        rate: u64,
    },
}

struct Paced {
    inner: Payload,
    rule: Rule,
    received: u64,
    timer: Pin<Box<Sleep>>,
    done: bool,
}

impl Paced {
    fn rate_deadline(&self) -> Option<Instant> {
        match self.rule {
            Rule::Deadline => None,
            Rule::MinRate { start, grace, rate } => {
                let earned = Duration::from_secs_f64(self.received as f64 / rate as f64);
                start.checked_add(grace)?.checked_add(earned)
            }
        }
    }
}

impl Stream for Paced {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received += chunk.len() as u64;
                if let Some(at) = this.rate_deadline() {
                    this.timer.as_mut().reset(at);
                }
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(other) => {
                this.done = true;
                return Poll::Ready(other);
            }
            Poll::Pending => {}
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            this.done = true;
            let what = match this.rule {
                Rule::Deadline => "the request body did not arrive in time",
                Rule::MinRate { .. } => "the upload is slower than the minimum rate",
            };
            return Poll::Ready(Some(Err(too_slow(what))));
        }
        Poll::Pending
    }
}

/// Middleware: puts the body of every request that has one under its pace.
pub async fn pace_bodies(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let pace = req
        .app_data::<web::Data<crate::state::AppState>>()
        .map(|s| s.pace);
    let has_body = req.headers().contains_key("transfer-encoding")
        || req
            .headers()
            .get("content-length")
            .is_some_and(|v| v.as_bytes() != b"0");
    if let (Some(pace), true) = (pace, has_body) {
        let now = Instant::now();
        let upload = req.path().starts_with("/uploads/");
        let (rule, first) = match (upload, pace.upload_min_rate) {
            (true, 0) => (Rule::Deadline, far_future(now)),
            (true, rate) => (
                Rule::MinRate {
                    start: now,
                    grace: pace.grace,
                    rate,
                },
                now + pace.grace,
            ),
            (false, _) => (Rule::Deadline, now + pace.body_timeout),
        };
        let paced = Paced {
            inner: req.take_payload(),
            rule,
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(first)),
            done: false,
        };
        req.set_payload(Payload::Stream {
            payload: Box::pin(paced),
        });
    }
    next.call(req).await
}

fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400 * 365)
}

/// Connections open per client address.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    max: usize,
    exempt: Arc<Vec<IpAddr>>,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// Held in a connection's data for as long as it is open.
struct Slot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimit {
    /// `max` connections per address (0: no limit); `exempt` are the trusted proxies, whose
    /// connections carry many clients.
    pub fn new(max: usize, exempt: Vec<IpAddr>) -> Self {
        ConnectionLimit {
            max,
            exempt: Arc::new(exempt),
            open: Arc::default(),
        }
    }

    /// Counts a new connection from `ip`; `false` when the address already holds the most
    /// it may. An admitted connection is counted until the returned slot drops.
    fn admit(&self, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            ip,
            open: self.open.clone(),
        })
    }

    /// The server's on-connect hook: counts the connection, or shuts the socket at once
    /// when its address is over the limit (the client sees the connection closed).
    pub fn on_connect(&self, conn: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
        if self.max == 0 {
            return;
        }
        let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() else {
            return;
        };
        let Ok(peer) = stream.peer_addr() else { return };
        if self.exempt.contains(&peer.ip()) {
            return;
        }
        match self.admit(peer.ip()) {
            Some(slot) => {
                data.insert(slot);
            }
            None => {
                metrics::counter!("fieldsync_connections_refused_total").increment(1);
                tracing::warn!(address = %peer.ip(), "connection refused: too many from this address");
                let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_max_and_a_closed_one_frees_its_place() {
        let limit = ConnectionLimit::new(2, vec![]);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limit.admit(a).unwrap();
        let _second = limit.admit(a).unwrap();
        assert!(limit.admit(a).is_none());
        assert!(limit.admit(b).is_some(), "another address has its own");
        drop(first);
        assert!(limit.admit(a).is_some());
    }

    #[tokio::test]
    async fn a_body_slower_than_the_floor_ends_in_a_timeout() {
        tokio::time::pause();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok(b), rx))
        });
        let start = Instant::now();
        let mut paced = Paced {
            inner: Payload::Stream {
                payload: Box::pin(body),
            },
            rule: Rule::MinRate {
                start,
                grace: Duration::from_secs(1),
                rate: 100,
            },
            received: 0,
            timer: Box::pin(tokio::time::sleep_until(start + Duration::from_secs(1))),
            done: false,
        };
        use futures_util::StreamExt;
        tx.send(Bytes::from(vec![0u8; 100])).unwrap();
        assert_eq!(paced.next().await.unwrap().unwrap().len(), 100);
        // 100 bytes earn one more second past the grace: the floor is met until t = 2 s.
        let e = paced.next().await.unwrap().unwrap_err();
        assert!(timed_out(&e));
        assert_eq!(start.elapsed().as_secs(), 2);
        assert!(paced.next().await.is_none());
    }
}
