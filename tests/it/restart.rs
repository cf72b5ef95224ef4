//! Clean stops and restarts with a backlog: the op counts a clean stop (or `fieldsync load`)
//! saves serve the next start, which then need not read every op; they serve it once, so a
//! crash after it means a recount; and `fieldsync check` holds saved counts to the ops.

use crate::helpers::{free_port, wait_up};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn fieldsync(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldsync"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fieldsync {args:?}:\n{text}");
    text
}

/// The service on the embedded simulator with replay off (the backlog stays queued), its log
/// appended to `log`.
fn serve(data: &Path, port: u16, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_fieldsync"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .env("FIELDSYNC__REPLAY__ENABLED", "false")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// How many ops the queue summary shows queued, to an admin.
async fn queued(http: &reqwest::Client, base: &str) -> u64 {
    let login: Value = http
        .post(format!("{base}/sessions"))
        .json(&json!({"username": "admin", "password": "demo", "deviceId": "ops-laptop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["accessToken"].as_str().unwrap();
    let summary: Value = http
        .get(format!("{base}/admin/queue"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    summary["byState"]["queued"].as_u64().unwrap_or(0)
}

fn starts(log: &Path, how: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.matches(&format!("counted={how}")).count()
}

#[tokio::test]
async fn a_clean_stop_saves_the_op_counts_for_one_start_and_check_holds_them_to_the_ops() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let log = dir.path().join("serve.log");
    let http = reqwest::Client::new();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    let loaded = fieldsync(&[
        "load",
        "--data-dir",
        d,
        "--ops",
        "300",
        "--batch",
        "50",
        "--routes",
        "3",
    ]);
    assert!(loaded.contains("loaded 300 ops"), "{loaded}");
    assert!(fieldsync(&["check", "--data-dir", d]).contains("ok"));

    // The load saved its counts: the first start restores them.
    let mut first = serve(&data, port, &log);
    wait_up(&http, &format!("{base}/readyz")).await;
    assert_eq!(queued(&http, &base).await, 300);
    assert_eq!(
        (starts(&log, "Restored"), starts(&log, "Recounted")),
        (1, 0)
    );

    // SIGTERM: a clean stop checkpoints and saves the counts again; check compares them.
    let pid = first.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(first.wait().unwrap().success());
    assert!(fieldsync(&["check", "--data-dir", d]).contains("ok"));

    let mut second = serve(&data, port, &log);
    wait_up(&http, &format!("{base}/readyz")).await;
    assert_eq!(queued(&http, &base).await, 300);
    assert_eq!(
        (starts(&log, "Restored"), starts(&log, "Recounted")),
        (2, 0)
    );

    // A crash leaves nothing saved (the start took them): the next start reads every op.
    second.kill().unwrap();
    second.wait().unwrap();
    let mut third = serve(&data, port, &log);
    wait_up(&http, &format!("{base}/readyz")).await;
    assert_eq!(queued(&http, &base).await, 300);
    assert_eq!(
        (starts(&log, "Restored"), starts(&log, "Recounted")),
        (2, 1)
    );
    third.kill().unwrap();
    third.wait().unwrap();
}
