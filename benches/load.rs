//! Load tool for the benchmarks in `bench/` (run through `bench/run.sh`; see bench/README.md).
//!
//! `cargo bench --bench load -- <command> [--key value ...]`:
//! - `seed --resources N --stops S`: a tenant seed with N technicians of S stops under `bench-org`;
//! - `warm --url U --token T --date D --resources N`: reads every route once (fills the cache);
//! - `ingest --url U --token T --date D --clients C --secs S`: status writes, one route per
//!   client, alternating en route / stop travel, flush-before-ack; prints throughput and latency;
//! - `push --url U --date D --clients C --batch B --secs S`: sync push of B-op batches from C
//!   devices (each signs in as `bench`), durable before each answer;
//! - `enqueue --url U --token T --date D --resources N --per-route K`: queues K writes per route;
//! - `drain --url U --token T`: waits until the queue is empty; prints ops/s;
//! - `approvals --url U --token T --date D --resources N`: completes the first stop of N
//!   routes (en route, started, completed), which opens N pending approvals;
//! - `steady --url U --token T --date D --resources N --rate R --secs S`: R writes/s, then the
//!   replay-lag p99 from `/metrics`;
//! - `upload --url U --target fieldsync|tus --token T --date D --devices C --secs S --mib M`:
//!   C devices each uploading M MiB photos in a loop (fieldsync: a grant, then tus
//!   creation-with-upload at the signed URL; tus: creation-with-upload at `U/files`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn args() -> (String, HashMap<String, String>) {
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    let cmd = it.next().unwrap_or_default();
    let mut map = HashMap::new();
    while let Some(k) = it.next() {
        if let Some(k) = k.strip_prefix("--") {
            map.insert(k.to_string(), it.next().unwrap_or_default());
        }
    }
    (cmd, map)
}

fn get<T: std::str::FromStr>(m: &HashMap<String, String>, k: &str, default: T) -> T {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn resource(i: usize) -> String {
    format!("b{i:04}")
}

fn seed(resources: usize, stops: usize) -> Value {
    let mut list = vec![
        json!({"resourceId": "bench-org", "name": "Bench", "resourceType": "BK", "timeZone": "America/New_York"}),
    ];
    for r in 0..resources {
        let stops: Vec<Value> = (0..stops)
            .map(|s| {
                json!({
                    "apptNumber": format!("B{r}-{s}"), "activityType": "REPAIR", "timeSlot": "AM",
                    "serviceWindowStart": "08:00", "serviceWindowEnd": "18:00", "duration": 15, "travelTime": 5,
                    "customerName": format!("Customer {r} {s}"), "customerPhone": "+15550000000",
                    "streetAddress": format!("{} Main St", s + 1), "city": "Springfield", "stateProvince": "NJ",
                    "postalCode": "07081", "latitude": 40.7, "longitude": -74.3
                })
            })
            .collect();
        list.push(json!({
            "resourceId": resource(r), "parentResourceId": "bench-org", "name": format!("Bench {r}"),
            "resourceType": "PR", "timeZone": "America/New_York",
            "route": {"dayStart": "00:01", "stops": stops},
            "vanStock": [{"inventoryType": "CAT6_M", "quantity": 100}]
        }));
    }
    json!({ "resources": list })
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    fn new(m: &HashMap<String, String>) -> Client {
        Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .unwrap(),
            url: m
                .get("url")
                .cloned()
                .unwrap_or_else(|| "http://127.0.0.1:18081".into()),
            token: m.get("token").cloned().unwrap_or_default(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{}", self.url, path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn first_stop(&self, date: &str, r: &str) -> i64 {
        self.stops(date, r).await[0]
    }

    async fn stops(&self, date: &str, r: &str) -> Vec<i64> {
        self.get(&format!("/routes/{date}?resourceId={r}")).await["stops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["activityId"].as_i64().unwrap())
            .collect()
    }

    /// One status write; returns (HTTP status, latency).
    async fn write(&self, activity: i64, status: &str, key: &str) -> (u16, Duration) {
        let t = Instant::now();
        let code = self
            .http
            .patch(format!("{}/activities/{activity}/status", self.url))
            .bearer_auth(&self.token)
            .header("Idempotency-Key", key)
            .json(&json!({ "status": status }))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        (code, t.elapsed())
    }

    async fn queue(&self) -> Value {
        self.get("/admin/queue").await
    }
}

/// Lines up the clients' timed phase: each sets itself up (session, routes), then all start
/// together, and rates are over the wall time of the whole phase. Timing each client from
/// the end of its own setup staggered them by seconds, so fewer ran at once than the run
/// said and count / secs overstated the rate (by about 2x for `push`).
struct StartLine {
    barrier: tokio::sync::Barrier,
    at: std::sync::OnceLock<Instant>,
}

impl StartLine {
    fn new(clients: usize) -> Arc<Self> {
        Arc::new(StartLine {
            barrier: tokio::sync::Barrier::new(clients),
            at: std::sync::OnceLock::new(),
        })
    }

    /// Waits for every client, then returns the common start.
    async fn wait(&self) -> Instant {
        self.barrier.wait().await;
        *self.at.get_or_init(Instant::now)
    }

    /// Seconds since the start, once the clients are done: the divisor of every rate.
    fn elapsed(&self) -> f64 {
        self.at
            .get()
            .map_or(f64::NAN, |t| t.elapsed().as_secs_f64())
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Client `i`'s routes (every `clients`-th of `resources`): the first stop of each, with how
/// far its en route / stop travel toggle already is.
async fn client_stops(
    c: &Client,
    date: &str,
    i: usize,
    clients: usize,
    resources: usize,
) -> Vec<(i64, u64)> {
    let mut stops = Vec::new();
    for r in (i..resources).step_by(clients) {
        let id = c.first_stop(date, &resource(r)).await;
        let current = c.get(&format!("/activities/{id}")).await["status"]
            .as_str()
            .unwrap_or("pending")
            .to_string();
        stops.push((id, if current == "enroute" { 1u64 } else { 0 }));
    }
    stops
}

/// Every client's latencies, sorted for percentiles.
async fn sorted_latencies(tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>) -> Vec<Duration> {
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn toggle(n: u64) -> &'static str {
    if n.is_multiple_of(2) {
        "enroute"
    } else {
        "pending"
    }
}

async fn ingest(m: &HashMap<String, String>) {
    let c = Arc::new(Client::new(m));
    let date = m.get("date").cloned().unwrap();
    let clients: usize = get(m, "clients", 32);
    let secs: u64 = get(m, "secs", 10);
    let resources: usize = get(m, "resources", 960);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut tasks = Vec::new();
    let errors = Arc::new(AtomicU64::new(0));
    let line = StartLine::new(clients);
    for i in 0..clients {
        let (c, date, run, errors) = (c.clone(), date.clone(), run.clone(), errors.clone());
        let line = line.clone();
        tasks.push(tokio::spawn(async move {
            // Each client (a device) works through its own routes in turn, toggling the first
            // stop between en route and stop travel: always legal, never another client's route.
            let mut stops = client_stops(&c, &date, i, clients, resources).await;
            let mut lat = Vec::new();
            let end = line.wait().await + Duration::from_secs(secs);
            let mut k = 0usize;
            while Instant::now() < end {
                let slot = k % stops.len();
                let (id, n) = stops[slot];
                let (code, d) = c
                    .write(id, toggle(n), &format!("{run}-{i}-{slot}-{n}"))
                    .await;
                if code == 202 {
                    lat.push(d);
                    stops[slot].1 += 1;
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                k += 1;
            }
            lat
        }));
    }
    let all = sorted_latencies(tasks).await;
    println!(
        "RESULT fieldsync_ingest clients={clients} secs={secs}: writes/s={:.0} p50_ms={:.2} p99_ms={:.2} errors={}",
        all.len() as f64 / line.elapsed(),
        pct(&all, 0.5),
        pct(&all, 0.99),
        errors.load(Ordering::Relaxed)
    );
}

/// Sync push of `--batch`-op batches from `--clients` devices (each its own session and its
/// own routes), durable before each answer.
async fn push(m: &HashMap<String, String>) {
    let base = Client::new(m);
    let date = m.get("date").cloned().unwrap();
    let clients: usize = get(m, "clients", 16);
    let batch: usize = get(m, "batch", 100);
    let secs: u64 = get(m, "secs", 10);
    let resources: usize = get(m, "resources", 960);
    let user = m.get("user").cloned().unwrap_or_else(|| "bench".into());
    let password = m
        .get("password")
        .cloned()
        .unwrap_or_else(|| "bench-pass".into());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let accepted = Arc::new(AtomicU64::new(0));
    let line = StartLine::new(clients);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let device = format!("push-{run}-{i}");
        let login: Value = base
            .http
            .post(format!("{}/sessions", base.url))
            .json(&json!({"username": user, "password": password, "deviceId": device}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let c = Arc::new(Client {
            http: base.http.clone(),
            url: base.url.clone(),
            token: login["accessToken"].as_str().unwrap().to_string(),
        });
        let (date, accepted, line) = (date.clone(), accepted.clone(), line.clone());
        tasks.push(tokio::spawn(async move {
            let mut stops = client_stops(&c, &date, i, clients, resources).await;
            let mut lat = Vec::new();
            let (mut seq, mut k) = (0u64, 0usize);
            let end = line.wait().await + Duration::from_secs(secs);
            while Instant::now() < end {
                let mut ops = Vec::with_capacity(batch);
                for _ in 0..batch {
                    let slot = k % stops.len();
                    let (id, n) = stops[slot];
                    stops[slot].1 += 1;
                    k += 1;
                    seq += 1;
                    let payload = json!({ "status": toggle(n) });
                    let canonical = serde_json_canonicalizer::to_vec(&payload).unwrap();
                    use sha2::Digest;
                    ops.push(json!({"clientOpId": format!("{seq}"), "seq": seq, "kind": "status", "activityId": id,
                        "payload": payload, "capturedAt": chrono::Utc::now().to_rfc3339(),
                        "sha256": hex::encode(sha2::Sha256::digest(canonical))}));
                }
                let t = Instant::now();
                let sent = c
                    .http
                    .post(format!("{}/sync/push", c.url))
                    .bearer_auth(&c.token)
                    .json(&json!({"deviceId": device, "deviceTime": chrono::Utc::now().to_rfc3339(), "ops": ops}))
                    .send()
                    .await;
                // A dropped connection: the next batch goes on (these ops would be resent by a
                // real device; here only accepted ops count).
                let Ok(resp) = sent else { continue };
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                lat.push(t.elapsed());
                let ok = body["results"].as_array().map(|r| r.iter().filter(|x| x["result"] == "accepted").count()).unwrap_or(0);
                accepted.fetch_add(ok as u64, Ordering::Relaxed);
            }
            lat
        }));
    }
    let all = sorted_latencies(tasks).await;
    println!(
        "RESULT fieldsync_sync_push clients={clients} batch={batch} secs={secs}: ops/s={:.0} batches={} p50_batch_ms={:.1} p99_batch_ms={:.1}",
        accepted.load(Ordering::Relaxed) as f64 / line.elapsed(),
        all.len(),
        pct(&all, 0.5),
        pct(&all, 0.99)
    );
}

/// Runs `work` on the first stop of each of `resources` routes, 32 routes at a time.
async fn on_first_stops<F, Fut>(m: &HashMap<String, String>, resources: usize, work: F)
where
    F: Fn(Arc<Client>, usize, i64) -> Fut + Copy + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let c = Arc::new(Client::new(m));
    let date = m.get("date").cloned().unwrap();
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for r in 0..resources {
        let (c, date, sem) = (c.clone(), date.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.unwrap();
            let id = c.first_stop(&date, &resource(r)).await;
            work(c, r, id).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn enqueue(m: &HashMap<String, String>) {
    let resources: usize = get(m, "resources", 200);
    let per: u64 = get(m, "per-route", 50);
    on_first_stops(m, resources, move |c, r, id| async move {
        for n in 0..per {
            let (code, _) = c.write(id, toggle(n), &format!("enq-{r}-{n}")).await;
            assert_eq!(code, 202);
        }
    })
    .await;
    println!(
        "# queued {} writes over {resources} routes",
        resources as u64 * per
    );
}

async fn approvals(m: &HashMap<String, String>) {
    let resources: usize = get(m, "resources", 1000);
    on_first_stops(m, resources, |c, r, id| async move {
        for status in ["enroute", "started", "completed"] {
            let (code, _) = c.write(id, status, &format!("apr-{r}-{status}")).await;
            assert_eq!(code, 202, "{status} on {id}");
        }
    })
    .await;
    println!("# opened {resources} pending approvals");
}

async fn drain(m: &HashMap<String, String>) {
    let c = Client::new(m);
    let start = Instant::now();
    let before = c.queue().await["byState"]["applied"].as_u64().unwrap_or(0);
    loop {
        let q = c.queue().await;
        let open = q["byState"]["queued"].as_u64().unwrap_or(0)
            + q["byState"]["sending"].as_u64().unwrap_or(0);
        if open == 0 {
            let applied = q["byState"]["applied"].as_u64().unwrap_or(0) - before;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "RESULT fieldsync_replay_drain: ops={applied} secs={secs:.2} ops/s={:.0} dead={} rejected={}",
                applied as f64 / secs,
                q["byState"]["dead"],
                q["byState"]["rejected"]
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Cumulative bucket counts of a Prometheus histogram, by upper bound.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// p99 upper bound of the observations made between two scrapes.
fn histogram_p99(before: &str, after: &str, name: &str) -> Option<f64> {
    let old = buckets(before, name);
    let delta: Vec<(f64, f64)> = buckets(after, name)
        .into_iter()
        .map(|(le, n)| {
            (
                le,
                n - old
                    .iter()
                    .find(|(l, _)| *l == le)
                    .map(|(_, m)| *m)
                    .unwrap_or(0.0),
            )
        })
        .collect();
    let total = delta.last()?.1;
    delta
        .iter()
        .find(|(_, n)| *n >= total * 0.99)
        .map(|(le, _)| *le)
}

async fn steady(m: &HashMap<String, String>) {
    let c = Arc::new(Client::new(m));
    let date = m.get("date").cloned().unwrap();
    let resources: usize = get(m, "resources", 200);
    let rate: u64 = get(m, "rate", 200);
    let secs: u64 = get(m, "secs", 10);
    let offset: usize = get(m, "offset", 0);
    let mut ids = Vec::new();
    for r in 0..resources {
        let id = c.first_stop(&date, &resource(offset + r)).await;
        let current = c.get(&format!("/activities/{id}")).await["status"]
            .as_str()
            .unwrap_or("pending")
            .to_string();
        ids.push((id, if current == "enroute" { 1u64 } else { 0 }));
    }
    let ids = Arc::new(tokio::sync::Mutex::new(ids));
    let before = c
        .http
        .get(format!("{}/metrics", c.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let end = Instant::now() + Duration::from_secs(secs);
    let mut sent = 0u64;
    let mut tasks = Vec::new();
    while Instant::now() < end {
        ticker.tick().await;
        let slot = (sent as usize) % resources;
        sent += 1;
        let (c, ids) = (c.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            // One write at a time per route keeps the toggle legal.
            let mut guard = ids.lock().await;
            let (id, n) = guard[slot];
            guard[slot].1 += 1;
            drop(guard);
            c.write(
                id,
                toggle(n),
                &format!("steady-{slot}-{n}-{}", uuid::Uuid::new_v4().simple()),
            )
            .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().0 == 202 {
            ok += 1;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = c
        .http
        .get(format!("{}/metrics", c.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    println!(
        "RESULT fieldsync_replay_steady rate={rate}/s secs={secs}: accepted={ok} replay_lag_p99_s<={:?}",
        histogram_p99(&before, &text, "fieldsync_replay_lag_seconds")
    );
}

async fn warm(m: &HashMap<String, String>) {
    let c = Arc::new(Client::new(m));
    let date = m.get("date").cloned().unwrap();
    let resources: usize = get(m, "resources", 1000);
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = Vec::new();
    for r in 0..resources {
        let (c, date, sem) = (c.clone(), date.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.unwrap();
            c.get(&format!("/routes/{date}?resourceId={}", resource(r)))
                .await["stops"]
                .as_array()
                .map(|s| s.len())
        }));
    }
    let mut n = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            n += 1;
        }
    }
    println!("# warmed {n} routes");
    // A figure "after N cached routes" is wrong when fewer were cached.
    assert_eq!(n, resources, "only {n} of {resources} routes could be read");
}

/// A pool of distinct photos of about `mib` MiB: (bytes, sha256 hex).
fn photos(n: usize, mib: usize) -> Vec<(bytes::Bytes, String)> {
    use sha2::Digest;
    // Noise JPEGs take about 1.26 bytes per pixel at the sample quality.
    let px = (mib * 1024 * 1024) as f64 / 1.26;
    let w = (px * 4.0 / 3.0).sqrt() as u32;
    let h = w * 3 / 4;
    (0..n)
        .map(|i| {
            let b = fieldsync::features::uploads::samples::photo(w, h, 100 + i as u64, None);
            let sha = hex::encode(sha2::Sha256::digest(&b));
            (bytes::Bytes::from(b), sha)
        })
        .collect()
}

async fn upload(m: &HashMap<String, String>) {
    let c = Arc::new(Client::new(m));
    let target = m
        .get("target")
        .cloned()
        .unwrap_or_else(|| "fieldsync".into());
    let date = m.get("date").cloned().unwrap_or_default();
    let devices: usize = get(m, "devices", 8);
    let secs: u64 = get(m, "secs", 10);
    let mib: usize = get(m, "mib", 5);
    let pool = Arc::new(photos(devices, mib));
    let run = uuid::Uuid::new_v4().simple().to_string();
    let bytes_done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let line = StartLine::new(devices);
    for i in 0..devices {
        let line = line.clone();
        let (c, pool, run, target, date) = (
            c.clone(),
            pool.clone(),
            run.clone(),
            target.clone(),
            date.clone(),
        );
        let (bytes_done, errors) = (bytes_done.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let (body, sha) = pool[i].clone();
            // An activity takes one photo per photo property of the tenant (OFSC's rule), so a
            // device moves on to its next stop when one is full, then to its next route.
            let mut stops = Vec::new();
            let mut next_route = i;
            if target == "fieldsync" {
                stops = c.stops(&date, &resource(next_route)).await;
            }
            let mut lat = Vec::new();
            let end = line.wait().await + Duration::from_secs(secs);
            let mut k = 0;
            while Instant::now() < end {
                k += 1;
                let url = if target == "fieldsync" {
                    if stops.is_empty() {
                        next_route += devices;
                        stops = c.stops(&date, &resource(next_route)).await;
                    }
                    let activity = stops[0];
                    let g: Value = c
                        .http
                        .post(format!("{}/activities/{activity}/attachments", c.url))
                        .bearer_auth(&c.token)
                        .header("Idempotency-Key", format!("{run}-{i}-{k}"))
                        .json(&json!({"kind": "photo", "contentType": "image/jpeg", "size": body.len(), "sha256": sha,
                                      "capturedAt": "2026-11-28T08:00:00Z"}))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    match g["upload"]["url"].as_str() {
                        Some(url) => url.to_string(),
                        None if g["code"] == "no-photo-property" => {
                            stops.remove(0);
                            continue;
                        }
                        None => {
                            if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("# first refused grant: {g}");
                            }
                            continue;
                        }
                    }
                } else {
                    format!("{}/files", c.url)
                };
                let t0 = Instant::now();
                let r = c
                    .http
                    .post(&url)
                    .header("Tus-Resumable", "1.0.0")
                    .header("Upload-Length", body.len().to_string())
                    .header("Content-Type", "application/offset+octet-stream")
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().as_u16() == 201 => {
                        lat.push(t0.elapsed());
                        bytes_done.fetch_add(body.len() as u64, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let all = sorted_latencies(tasks).await;
    println!(
        "RESULT upload_{target} devices={devices} body={mib}MiB secs={secs}: MB/s={:.1} uploads/s={:.1} p50_ms={:.1} p99_ms={:.1} errors={}",
        bytes_done.load(Ordering::Relaxed) as f64 / 1e6 / line.elapsed(),
        all.len() as f64 / line.elapsed(),
        pct(&all, 0.5),
        pct(&all, 0.99),
        errors.load(Ordering::Relaxed)
    );
}

#[tokio::main]
async fn main() {
    let (cmd, m) = args();
    match cmd.as_str() {
        "seed" => println!("{}", seed(get(&m, "resources", 1000), get(&m, "stops", 25))),
        "warm" => warm(&m).await,
        "ingest" => ingest(&m).await,
        "enqueue" => enqueue(&m).await,
        "push" => push(&m).await,
        "drain" => drain(&m).await,
        "approvals" => approvals(&m).await,
        "steady" => steady(&m).await,
        "upload" => upload(&m).await,
        other => eprintln!("unknown command {other:?}; see the module docs"),
    }
}
