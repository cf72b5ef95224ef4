//! Crash safety: the built binary is killed with SIGKILL at random moments while devices
//! write (one status change at a time, or sync batches) and the replayer sends; after
//! restarts every acknowledged write reaches OFSC exactly once, in order.

use crate::helpers::{free_port, spawn, wait_up};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// One technician's planned day: (activity, device status, expected OFSC action).
fn plan(stops: &[i64]) -> Moves {
    stops
        .iter()
        .flat_map(|id| {
            [
                (*id, "enroute", "enroute"),
                (*id, "started", "start"),
                (*id, "completed", "complete"),
            ]
        })
        .collect()
}

/// Signs `user` in with the demo password; `None` when the server is not answering.
pub(crate) async fn login(http: &reqwest::Client, base: &str, user: &str) -> Option<String> {
    let resp = http
        .post(format!("{base}/sessions"))
        .json(&json!({"username": user, "password": "demo", "deviceId": format!("{user}-phone")}))
        .send()
        .await
        .ok()?;
    let body: Value = resp.json().await.ok()?;
    body["accessToken"].as_str().map(str::to_string)
}

/// One technician's planned moves: (activity, device status, expected OFSC action).
type Moves = Vec<(i64, &'static str, &'static str)>;

/// How a device sends its moves from `next` on; resolves to how many were acknowledged.
type Driver = fn(
    reqwest::Client,
    String,
    &'static str,
    Moves,
    usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send>>;

/// Sends the technician's next moves until the server goes away; returns how many were acked.
async fn drive(
    http: reqwest::Client,
    base: String,
    user: &'static str,
    moves: Moves,
    mut next: usize,
) -> usize {
    let Some(token) = login(&http, &base, user).await else {
        return next;
    };
    while next < moves.len() {
        let (id, status, _) = moves[next];
        let resp = http
            .patch(format!("{base}/activities/{id}/status"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("{user}-{next}"))
            .json(&json!({ "status": status }))
            .send()
            .await;
        match resp {
            Ok(r) if r.status() == 202 => next += 1,
            // OFSC hiccup while the route was not cached yet: try again next cycle.
            Ok(r) if r.status() == 503 => break,
            Ok(r) => panic!(
                "{user} move {next} ({status} on {id}) got {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            // The server died mid-request: the device retries the same key after restart.
            Err(_) => break,
        }
    }
    next
}

/// Sends the technician's next moves as sync batches of up to 5 ops (seq = move index + 1)
/// until the server goes away; returns how many were acknowledged. A batch whose answer was
/// lost is sent again from the same move, so its ops come back as duplicates.
async fn drive_push(
    http: reqwest::Client,
    base: String,
    user: &'static str,
    moves: Moves,
    mut next: usize,
) -> usize {
    let Some(token) = login(&http, &base, user).await else {
        return next;
    };
    // The device's clock readings are part of each op: a resend carries the same ones.
    static DAY_START: std::sync::OnceLock<chrono::DateTime<chrono::FixedOffset>> =
        std::sync::OnceLock::new();
    let start =
        *DAY_START.get_or_init(|| chrono::Utc::now().fixed_offset() - chrono::Duration::hours(3));
    while next < moves.len() {
        let end = (next + 5).min(moves.len());
        let ops: Vec<Value> = (next..end)
            .map(|i| {
                let (id, status, _) = moves[i];
                let payload = json!({ "status": status });
                let sha = crate::helpers::payload_sha(&payload);
                json!({"clientOpId": format!("{user}-{i}"), "seq": i + 1, "kind": "status",
                       "activityId": id, "payload": payload, "sha256": sha,
                       "capturedAt": (start + chrono::Duration::minutes(i as i64)).to_rfc3339()})
            })
            .collect();
        let resp = http
            .post(format!("{base}/sync/push"))
            .bearer_auth(&token)
            .json(&json!({"deviceId": format!("{user}-phone"),
                          "deviceTime": chrono::Utc::now().to_rfc3339(), "ops": ops}))
            .send()
            .await;
        let body: Value = match resp {
            Ok(r) if r.status() == 200 => match r.json().await {
                Ok(b) => b,
                Err(_) => break,
            },
            Ok(r) if r.status() == 503 => break,
            Ok(r) => panic!(
                "{user} batch from {next} got {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) => break,
        };
        for r in body["results"].as_array().unwrap() {
            assert!(
                matches!(r["result"].as_str(), Some("accepted" | "duplicate")),
                "{user}: {r}"
            );
        }
        next = end;
    }
    next
}

fn boxed_drive(
    http: reqwest::Client,
    base: String,
    user: &'static str,
    moves: Moves,
    next: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send>> {
    Box::pin(drive(http, base, user, moves, next))
}

fn boxed_push(
    http: reqwest::Client,
    base: String,
    user: &'static str,
    moves: Moves,
    next: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = usize> + Send>> {
    Box::pin(drive_push(http, base, user, moves, next))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_writes_and_replay_loses_nothing_and_applies_once() {
    kill_9_cycles([boxed_drive; 3], 2026, turbulence(), 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_sync_pushes_and_replay_loses_nothing_and_applies_once() {
    kill_9_cycles([boxed_push; 3], 2027, turbulence(), 20).await;
}

/// Mixed load (single writes from two technicians, resent sync batches from the third) and
/// a simulator that answers 5xx, 429 with `Retry-After`, and times out after applying.
/// At least 50 kill -9 cycles; `CRASH_CYCLES=500 cargo test --test it mixed_load` for the
/// long run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_mixed_load_with_faults_keeps_the_journal_and_ofsc_exact() {
    let cycles = std::env::var("CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(50);
    let faults = json!({
        "rate5xx": 0.08, "rate429": 0.05, "retryAfterSecs": 1,
        "timeoutAfterApply": 0.05, "timeoutHoldMs": 1500, "latencyMs": 3, "seed": 11,
    });
    kill_9_cycles([boxed_drive, boxed_push, boxed_drive], 2028, faults, cycles).await;
}

/// Some turbulence so replay is mid-flight when the kill comes.
fn turbulence() -> Value {
    json!({"rate5xx": 0.1, "latencyMs": 5, "seed": 7})
}

/// After a kill: `fieldsync check` on the data directory passes (every checksum verifies,
/// every journal-owned index agrees with the journal, the op counts agree with the ops).
fn assert_check_passes(data: &std::path::Path, cycle: usize) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fieldsync"))
        .args(["check", "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cycle {cycle}: fieldsync check failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The counts a start begins from (the checkpoint's, moved on by the journal past it)
    // were compared with a count of the ops, not skipped as unknown.
    assert!(
        stdout.contains("op counts: the checkpoint's"),
        "cycle {cycle}: {stdout}"
    );
}

async fn kill_9_cycles(drivers: [Driver; 3], seed: u64, faults: Value, min_cycles: usize) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let sim_port = free_port();
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let _sim = spawn(
        &["ofsc-sim", "--listen", &format!("127.0.0.1:{sim_port}")],
        &[],
    );
    wait_up(&http, &format!("{sim_url}/__sim/ledger")).await;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let envs = [
        ("FIELDSYNC__REPLAY__BASE_BACKOFF_MS", "10"),
        ("FIELDSYNC__REPLAY__MAX_BACKOFF_MS", "200"),
        ("FIELDSYNC__REPLAY__MAX_ATTEMPTS", "1000"),
        ("FIELDSYNC__SERVER__OFSC_PROBE_SECS", "1"),
        // A 1 s OFSC timeout, so the simulator's held answers are ambiguous failures.
        ("FIELDSYNC__OFSC__BASE_URL", sim_url.as_str()),
        ("FIELDSYNC__OFSC__INSTANCE", "demo"),
        ("FIELDSYNC__OFSC__CLIENT_ID", "fieldsync-demo"),
        ("FIELDSYNC__OFSC__CLIENT_SECRET", "demo"),
        ("FIELDSYNC__OFSC__TIMEOUT_SECS", "1"),
    ];
    let serve = || {
        spawn(
            &[
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
                data.to_str().unwrap(),
                "--ofsc-url",
                &sim_url,
            ],
            &envs,
        )
    };

    // Learn the routes from the simulator itself.
    let techs = ["tech1", "tech2", "tech3"];
    let mut days = Vec::new();
    for t in techs {
        let res: Value = http
            .get(format!("{sim_url}/rest/ofscCore/v1/resources/{t}"))
            .basic_auth("fieldsync-demo@demo", Some("demo"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let tz: chrono_tz::Tz = res["timeZoneIANA"].as_str().unwrap().parse().unwrap();
        let date = chrono::Utc::now()
            .with_timezone(&tz)
            .date_naive()
            .to_string();
        let route: Value = http
            .get(format!(
                "{sim_url}/rest/ofscCore/v1/resources/{t}/routes/{date}"
            ))
            .basic_auth("fieldsync-demo@demo", Some("demo"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stops: Vec<i64> = route["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["activityId"].as_i64().unwrap())
            .collect();
        days.push(plan(&stops));
    }

    http.post(format!("{sim_url}/__sim/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut progress = vec![0usize; techs.len()];
    let mut cycles = 0;
    while cycles < min_cycles || progress.iter().zip(&days).any(|(p, d)| p < &d.len()) {
        cycles += 1;
        assert!(cycles < min_cycles + 200, "no progress: {progress:?}");
        let mut server = serve();
        wait_up(&http, &format!("{base}/healthz")).await;
        let drivers: Vec<_> = techs
            .iter()
            .zip(&days)
            .zip(&progress)
            .zip(drivers)
            .map(|(((t, d), p), driver)| {
                tokio::spawn(driver(http.clone(), base.clone(), t, d.clone(), *p))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(30..400))).await;
        // SIGKILL: no shutdown hooks, no final flush.
        server.0.kill().unwrap();
        server.0.wait().unwrap();
        for (i, d) in drivers.into_iter().enumerate() {
            progress[i] = d.await.unwrap();
        }
        assert_check_passes(&data, cycles);
    }

    // Last start: let the replayer drain.
    http.post(format!("{sim_url}/__sim/faults"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let mut last = serve();
    wait_up(&http, &format!("{base}/healthz")).await;
    let expected: usize = days.iter().map(Vec::len).sum::<usize>() + techs.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ledger = loop {
        let ledger: Vec<Value> = http
            .get(format!("{sim_url}/__sim/ledger"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ledger.len() >= expected || Instant::now() > deadline {
            break ledger;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(cycles >= min_cycles);
    for (t, day) in techs.iter().zip(&days) {
        let ids: Vec<i64> = day.iter().map(|m| m.0).collect();
        let mine: Vec<(i64, String)> = ledger
            .iter()
            .filter(|e| e["activityId"].as_i64().is_some_and(|id| ids.contains(&id)))
            .map(|e| {
                (
                    e["activityId"].as_i64().unwrap(),
                    e["action"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(i64, String)> = day.iter().map(|(id, _, a)| (*id, a.to_string())).collect();
        assert_eq!(
            mine, want,
            "{t}: every acknowledged write exactly once, in order"
        );
        let activations = ledger
            .iter()
            .filter(|e| e["action"] == "activate" && e["resourceId"] == *t)
            .count();
        assert_eq!(activations, 1, "{t}: one activation");
    }
    assert_eq!(ledger.len(), expected, "nothing else reached OFSC");
    last.0.kill().unwrap();
    last.0.wait().unwrap();
    assert_check_passes(&data, cycles + 1);
}
