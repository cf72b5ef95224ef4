//! Stops and restarts with a backlog: every checkpoint (a clean stop's, `fieldsync load`'s,
//! the running service's) persists the op counts as of its watermark, so the next start, after
//! a crash too, need not read every op; and `fieldsync check` holds them to the ops.

use crate::helpers::{free_port, wait_up};
use serde_json::Value;
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

/// `fieldsync load` of 300 ops in batches of 50 over 3 routes, with `extra` arguments.
fn load_300(dir: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "load",
        "--data-dir",
        dir,
        "--ops",
        "300",
        "--batch",
        "50",
        "--routes",
        "3",
    ];
    args.extend_from_slice(extra);
    fieldsync(&args)
}

/// A start of the service on the embedded simulator with replay off (the backlog stays
/// queued), its log appended to `log`.
struct Start<'a> {
    data: &'a Path,
    log: &'a Path,
    port: u16,
    http: reqwest::Client,
    /// More settings, as environment variables.
    env: &'a [(&'a str, &'a str)],
}

impl<'a> Start<'a> {
    /// A start on `data`, logging to `log`, on a free port, with `env` set.
    fn new(data: &'a Path, log: &'a Path, env: &'a [(&'a str, &'a str)]) -> Self {
        Start {
            data,
            log,
            port: free_port(),
            http: reqwest::Client::new(),
            env,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the service, waits for it to be ready, and answers it with how many ops it
    /// shows queued and how many starts so far (restored, recounted) the log records.
    async fn run(&self) -> (Child, u64, (usize, usize)) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fieldsync"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{}", self.port),
                "--data-dir",
                self.data.to_str().unwrap(),
            ])
            .env("FIELDSYNC__REPLAY__ENABLED", "false")
            .env("RUST_LOG", "info")
            .envs(self.env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_up(&self.http, &format!("{}/readyz", self.base())).await;
        let n = ops_in(&self.http, &self.base(), "queued").await;
        let text = std::fs::read_to_string(self.log).unwrap_or_default();
        let starts = (
            text.matches("counted=Restored").count(),
            text.matches("counted=Recounted").count(),
        );
        (child, n, starts)
    }
}

/// How many ops the queue summary shows in `state`, to an admin.
async fn ops_in(http: &reqwest::Client, base: &str, state: &str) -> u64 {
    let token = crate::crash::login(http, base, "admin")
        .await
        .expect("the demo admin signs in");
    let summary: Value = http
        .get(format!("{base}/admin/queue"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    summary["byState"][state].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn starts_after_a_load_a_clean_stop_or_a_crash_need_not_count_the_ops() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let log = dir.path().join("serve.log");
    let start = Start::new(&data, &log, &[]);

    let loaded = load_300(d, &[]);
    assert!(loaded.contains("loaded 300 ops"), "{loaded}");
    check_ok(d);

    // The load's checkpoints persisted the counts: the first start restores them.
    let (mut first, queued, starts) = start.run().await;
    assert_eq!((queued, starts), (300, (1, 0)));
    huge_pages_are_off(first.id());

    // SIGTERM: a clean stop checkpoints; check compares the counts with the ops.
    let pid = first.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(first.wait().unwrap().success());
    check_ok(d);
    let (mut second, queued, starts) = start.run().await;
    assert_eq!((queued, starts), (300, (2, 0)));

    // A crash: the next start begins from the last checkpoint's counts all the same.
    second.kill().unwrap();
    second.wait().unwrap();
    let (mut third, queued, starts) = start.run().await;
    assert_eq!((queued, starts), (300, (3, 0)));
    third.kill().unwrap();
    third.wait().unwrap();
    check_ok(d);
}

/// `fieldsync check` passes, having compared the op counts with the ops.
fn check_ok(dir: &str) {
    let out = fieldsync(&["check", "--data-dir", dir]);
    assert!(out.lines().any(|l| l == "ok"), "{out}");
    assert!(
        out.contains("op counts: the checkpoint's"),
        "the counts were compared: {out}"
    );
}

/// The service turns transparent huge pages off for itself: with them, sled's scattered page
/// table made 2 MiB pages resident (bench/README.md, "Memory: huge pages off"). Kernels
/// since 5.0 report the flag in `/proc/<pid>/status`; on an older one there is nothing
/// to read.
fn huge_pages_are_off(pid: u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
}

#[test]
fn prune_removes_applied_history_and_the_store_still_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let loaded = load_300(d, &["--applied"]);
    assert!(loaded.contains("loaded 300 ops"), "{loaded}");
    check_ok(d);
    // The default retention is 90 days, and nothing is that old.
    let kept = fieldsync(&["prune", "--data-dir", d]);
    assert!(kept.contains("older than 90 days"), "{kept}");
    assert!(kept.contains("pruned 0 ops"), "{kept}");
    let pruned = fieldsync(&["prune", "--data-dir", d, "--older-than-days", "0"]);
    assert!(pruned.contains("pruned 300 ops"), "{pruned}");
    // One idempotency record per batch of 50.
    assert!(pruned.contains("and 6 idempotency records"), "{pruned}");
    // Every record is of finished or pruned ops: the journal is compacted whole.
    assert!(pruned.contains("compacted "), "{pruned}");
    assert!(!pruned.contains("compacted 0 "), "{pruned}");
    check_ok(d);
    let again = fieldsync(&["prune", "--data-dir", d, "--older-than-days", "0"]);
    assert!(
        again.contains("pruned 0 ops, 0 change-log entries and 0 idempotency records"),
        "{again}"
    );
    // sled keeps the pruned records' space; a rewrite leaves it behind.
    let copy = dir.path().join("copy");
    let c = copy.to_str().unwrap();
    let rewrote = fieldsync(&["rewrite", "--data-dir", d, "--to", c]);
    let mib: Vec<f64> = rewrote
        .split(['(', ')'])
        .filter_map(|part| part.strip_suffix(" MiB")?.parse().ok())
        .collect();
    assert!(mib.len() == 2 && mib[1] < mib[0], "{rewrote}");
    check_ok(c);
}

/// A device's pull from `cursor` (none: a first pull).
async fn pull(http: &reqwest::Client, base: &str, token: &str, cursor: Option<&str>) -> Value {
    let url = match cursor {
        Some(c) => format!("{base}/sync/pull?cursor={c}"),
        None => format!("{base}/sync/pull"),
    };
    http.get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_pull_after_a_restart_goes_on_from_the_devices_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("serve.log");
    let start = Start::new(&data, &log, &[]);
    let (http, base) = (start.http.clone(), start.base());
    let (mut first, _, _) = start.run().await;
    let token = crate::crash::login(&http, &base, "tech1").await.unwrap();
    let snapshot = pull(&http, &base, &token, None).await;
    let cursor = snapshot["nextCursor"].as_str().unwrap().to_string();
    let activity = snapshot["snapshot"]["stops"][0]["activityId"]
        .as_i64()
        .unwrap();
    let write = http
        .patch(format!("{base}/activities/{activity}/status"))
        .bearer_auth(&token)
        .header("Idempotency-Key", "restart-pull-1")
        .json(&serde_json::json!({"status": "enroute"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 202);
    let before = pull(&http, &base, &token, Some(&cursor)).await;
    assert_eq!(before["reset"], false, "{before}");
    assert!(!before["items"].as_array().unwrap().is_empty(), "{before}");

    let pid = first.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(first.wait().unwrap().success());
    let (mut second, _, _) = start.run().await;
    let token = crate::crash::login(&http, &base, "tech1").await.unwrap();
    // The same page as before the restart, not a reset that would skip the op's outcome.
    let after = pull(&http, &base, &token, Some(&cursor)).await;
    assert_eq!(after["reset"], false, "{after}");
    assert_eq!(after["items"], before["items"], "{after}");
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test]
async fn the_running_service_prunes_history_past_its_retention() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let log = dir.path().join("serve.log");
    // History applied 100 days ago: past the default retention of 90.
    let loaded = load_300(d, &["--applied", "--age-days", "100"]);
    assert!(loaded.contains("loaded 300 ops"), "{loaded}");
    let start = Start::new(
        &data,
        &log,
        &[("FIELDSYNC__HISTORY__PRUNE_EVERY_SECS", "1")],
    );
    let (mut child, _, _) = start.run().await;
    assert_eq!(ops_in(&start.http, &start.base(), "applied").await, 300);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ops_in(&start.http, &start.base(), "applied").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the history was not pruned: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let pid = child.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("history pruned"), "{text}");
    check_ok(d);
}
