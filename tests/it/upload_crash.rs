//! Uploads against the built binary: image bombs leave the process's peak memory bounded,
//! a SIGKILL in the middle of an upload never leaves it marked complete (it resumes), and one
//! during the background decode is resumed at the next start.

use crate::helpers::{free_port, spawn, wait_up};
use crate::uploads::{raw_patch, sha_hex, upload_all};
use fieldsync::features::uploads::samples;
use serde_json::{json, Value};
use std::time::Duration;

fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

async fn grant(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: i64,
    ct: &str,
    bytes: &[u8],
    key: &str,
) -> Value {
    http.post(format!("{base}/activities/{id}/attachments"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(&json!({"kind": "photo", "contentType": ct, "size": bytes.len(), "sha256": sha_hex(bytes),
                      "capturedAt": "2026-11-28T08:00:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn head_offset(http: &reqwest::Client, url: &str) -> u64 {
    let r = http
        .head(url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.headers()["upload-offset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bombs_keep_memory_bounded_and_a_kill_mid_upload_resumes() {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let serve = || {
        spawn(
            &[
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[("FIELDSYNC__SERVER__OFSC_PROBE_SECS", "1")],
        )
    };
    let first = serve();
    wait_up(&http, &format!("{base}/readyz")).await;
    let login: Value = http
        .post(format!("{base}/sessions"))
        .json(&json!({"username": "tech1", "password": "demo", "deviceId": "tech1-phone"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["accessToken"].as_str().unwrap().to_string();
    let snapshot: Value = http
        .get(format!("{base}/sync/pull"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = snapshot["snapshot"]["stops"][0]["activityId"]
        .as_i64()
        .unwrap();

    let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/images");
    for (n, name) in ["bomb-claims-100000.png", "bomb-zeros-20000.png"]
        .iter()
        .enumerate()
    {
        let bytes = std::fs::read(assets.join(name)).unwrap();
        let g = grant(
            &http,
            &base,
            &token,
            id,
            "image/png",
            &bytes,
            &format!("bomb{n}"),
        )
        .await;
        let r = upload_all(&http, g["upload"]["url"].as_str().unwrap(), &bytes).await;
        assert_eq!(r.status(), 422, "{name}");
    }
    let peak = peak_rss_mib(first.0.id());
    assert!(peak < 200, "peak RSS {peak} MiB after the bombs");

    // Killed while the body is arriving.
    // Large enough that its decode (debug build) is still running when the kill below lands.
    let photo = samples::photo(2400, 1800, 9, None);
    let g = grant(&http, &base, &token, id, "image/jpeg", &photo, "crash").await;
    let url = g["upload"]["url"].as_str().unwrap().to_string();
    let sent = photo.len() * 4 / 10;
    let (u, p) = (url.clone(), photo.clone());
    let cut = tokio::task::spawn_blocking(move || {
        raw_patch(port, &u, 0, &p, sent, Duration::from_millis(1500), false)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(first); // SIGKILL mid-body
    cut.await.unwrap();
    let second = serve();
    wait_up(&http, &format!("{base}/readyz")).await;
    let offset = head_offset(&http, &url).await;
    assert!(offset <= sent as u64, "{offset} > {sent}");
    let att = g["attachmentId"].as_str().unwrap();
    let item = crate::uploads::listed(&http, &base, &token, id, att).await;
    assert_ne!(
        item["state"], "complete",
        "never complete before its last byte"
    );
    let r = http
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(photo[offset as usize..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Killed after the last 204, during the background decode: the next start resumes it.
    let item = crate::uploads::listed(&http, &base, &token, id, att).await;
    assert_eq!(item["state"], "processing", "{item}");
    drop(second);
    let _third = serve();
    wait_up(&http, &format!("{base}/readyz")).await;
    let item = crate::uploads::processed(&http, &base, &token, id, att).await;
    assert_eq!(item["state"], "complete");
    let content = http
        .get(format!("{base}/attachments/{att}/content"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(content.bytes().await.unwrap().as_ref(), photo.as_slice());
}
