//! Slow and greedy clients: a body that trickles is cut off, an upload below the minimum
//! rate ends with what arrived kept, and one address cannot hold more connections than
//! allowed.

use crate::helpers::Stack;
use crate::uploads::{created_upload, first_stop, grant, offset_of, tus};
use fieldsync::features::uploads::samples;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends `head`, then `body` `step` bytes at a time every `every`, until the server answers,
/// closes, or `give_up` passes. Returns what it answered and when.
async fn trickle(
    port: u16,
    head: String,
    body: Vec<u8>,
    step: usize,
    every: Duration,
    give_up: Duration,
) -> (String, Duration) {
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(every)).unwrap();
        sock.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut sent = 0;
        while start.elapsed() < give_up {
            if sent < body.len() {
                let end = (sent + step).min(body.len());
                if sock.write_all(&body[sent..end]).is_err() {
                    break;
                }
                sent = end;
            }
            let mut buf = [0u8; 4096];
            match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if !answer.is_empty() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        (
            String::from_utf8_lossy(&answer).into_owned(),
            start.elapsed(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_off_with_a_408() {
    let stack = Stack::start_with(|s| s.server.body_timeout_secs = 1).await;
    let head = "POST /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n".to_string();
    let (answer, took) = trickle(
        stack.app.port,
        head,
        vec![b' '; 300],
        1,
        Duration::from_millis(200),
        Duration::from_secs(8),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{took:?}: {answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_below_the_minimum_rate_ends_and_keeps_what_arrived() {
    let stack = Stack::start_with(|s| {
        s.server.upload_min_bytes_per_sec = 400;
        s.server.upload_rate_grace_secs = 1;
    })
    .await;
    let s = stack.app.login("tech1").await;
    let id = first_stop(&stack, &s, "tech1").await;
    let photo = samples::photo(300, 200, 3, None);
    let (code, g) = grant(&stack, &s, id, "photo", "image/jpeg", &photo, "slow1").await;
    assert_eq!(code, 201, "{g}");
    let http = &stack.app.http;
    let url = created_upload(http, &g, &photo).await;
    let path = url
        .split_once(&format!("127.0.0.1:{}", stack.app.port))
        .unwrap()
        .1;
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {}\r\n\r\n",
        photo.len()
    );
    // 20 bytes every 200 ms is 100 B/s, a quarter of the floor.
    let (answer, took) = trickle(
        stack.app.port,
        head,
        photo.clone(),
        20,
        Duration::from_millis(200),
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{took:?}: {answer}");
    assert!(answer.contains("upload-too-slow"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let kept = offset_of(http, &url).await;
    assert!(kept > 0 && kept < photo.len() as u64, "{kept}");
    let rest = tus(
        http,
        "PATCH",
        &url,
        Some(kept),
        Some(&photo[kept as usize..]),
        &[],
    )
    .await;
    assert_eq!(rest.status(), 204, "a fast resume completes the upload");
}

fn served(port: u16) -> Option<TcpStream> {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut buf = [0u8; 12];
    sock.read_exact(&mut buf).ok()?;
    buf.starts_with(b"HTTP/1.1 200").then_some(sock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let stack = Stack::start_with(|s| s.server.max_connections_per_address = 3).await;
    let port = stack.app.port;
    tokio::task::spawn_blocking(move || {
        // The stack's own client may hold a pooled connection or two: open until refused.
        let mut open = Vec::new();
        let refused = loop {
            match served(port) {
                Some(sock) => open.push(sock),
                None => break true,
            }
            if open.len() > 3 {
                break false;
            }
        };
        assert!(refused, "a fourth connection was served");
        assert!(!open.is_empty(), "the first one was served");
        drop(open);
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            served(port).is_some(),
            "closed connections free their places"
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_not_held_to_one_addresses_share() {
    let stack = Stack::start_with(|s| {
        s.server.max_connections_per_address = 1;
        s.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let port = stack.app.port;
    tokio::task::spawn_blocking(move || {
        let open: Vec<TcpStream> = (0..4).filter_map(|_| served(port)).collect();
        assert_eq!(open.len(), 4, "a proxy carries many clients' connections");
    })
    .await
    .unwrap();
}
