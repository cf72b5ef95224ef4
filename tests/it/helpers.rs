//! Shared setup: a simulator on port 0, a connector pointed at it, and control helpers.

use fieldsync::config::TenantSettings;
use fieldsync::ofsc::wire::Activity;
use fieldsync::ofsc::{AuthKind, OfscClient};
use fieldsync::sim::{seed, Sim, SimServer};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Lowercase hex SHA-256 of a payload's RFC 8785 canonical bytes, as a device computes it
/// for a sync op (computed here independently of the server's own function).
pub fn payload_sha(payload: &Value) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        serde_json_canonicalizer::to_vec(payload).unwrap(),
    ))
}

pub struct TestSim {
    pub server: SimServer,
    pub client: OfscClient,
    pub http: reqwest::Client,
}

impl TestSim {
    pub async fn start() -> TestSim {
        Self::start_with(AuthKind::Oauth2, Duration::from_secs(10)).await
    }

    pub async fn start_with(auth: AuthKind, timeout: Duration) -> TestSim {
        Self::start_seeded(seed::DEMO_TENANT, auth, timeout).await
    }

    pub async fn start_seeded(seed_text: &str, auth: AuthKind, timeout: Duration) -> TestSim {
        let sim = Sim::new(seed::parse(seed_text).unwrap()).unwrap();
        let server = SimServer::start("127.0.0.1:0", sim, 2).unwrap();
        let mut tenant = TenantSettings::demo_at(&server.url()).client_config();
        tenant.auth = auth;
        tenant.timeout = timeout;
        let client = OfscClient::new(tenant).unwrap();
        TestSim {
            server,
            client,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.url(), path)
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// A GET of the simulator's own API (`/rest/…` with the demo credentials, or
    /// `/__sim/…`): status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .basic_auth("fieldsync-demo@demo", Some("demo"))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn faults(&self, body: Value) {
        self.control("/__sim/faults", body).await;
    }

    pub async fn reset(&self) {
        let resp = self
            .http
            .post(self.url("/__sim/reset"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
    }

    pub async fn ledger(&self) -> Vec<Value> {
        self.http
            .get(self.url("/__sim/ledger"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The route of `resource` for today in its zone, as the simulator has it.
    /// The OFSC actions the ledger shows for one activity, in the order they were applied.
    pub async fn ledger_actions(&self, activity: i64) -> Vec<String> {
        self.ledger()
            .await
            .iter()
            .filter(|e| e["activityId"] == activity)
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn today_route(&self, resource: &str) -> (String, Vec<Activity>) {
        let tz = self
            .client
            .get_resource(resource)
            .await
            .unwrap()
            .time_zone_iana
            .unwrap();
        let date =
            fieldsync::ofsc::time::today_in(fieldsync::ofsc::time::zone(&tz).unwrap()).to_string();
        let route = self.client.get_route(resource, &date).await.unwrap();
        (date, route.items)
    }

    pub async fn activate(&self, resource: &str, date: &str) {
        self.client
            .route_action(resource, date, "activate", None)
            .await
            .unwrap();
    }
}

/// The body each action needs to be well-formed.
pub fn action_body(action: &str) -> Value {
    match action {
        "delay" => json!({"delayMinutes": 15}),
        "reopen" => json!({"setPositionInRoute": {"position": "last"}}),
        _ => json!({}),
    }
}

/// The test JWT key, so tests can forge tokens with the right and wrong keys.
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// A running service on port 0 with its own data dir and embedded simulator.
pub struct TestApp {
    pub port: u16,
    pub http: reqwest::Client,
    pub state: actix_web::web::Data<fieldsync::state::AppState>,
    pub _dir: tempfile::TempDir,
}

/// A signed-in device.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub device: String,
    pub body: Value,
}

impl TestApp {
    pub async fn spawn(configure: impl FnOnce(&mut fieldsync::config::Settings)) -> TestApp {
        if std::env::var_os("TEST_LOG").is_some() {
            fieldsync::telemetry::init();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut settings = fieldsync::config::Settings::default();
        settings.server.listen = "127.0.0.1:0".into();
        settings.server.data_dir = dir.path().join("data");
        settings.server.workers = 2;
        settings.server.ofsc_probe_secs = 1;
        settings.auth.jwt_secret = Some(fieldsync::config::Secret::new(JWT_SECRET));
        configure(&mut settings);
        let app = fieldsync::startup::Application::build(settings)
            .await
            .unwrap();
        let port = app.port();
        let state = app.state();
        tokio::spawn(app.run_until_stopped());
        let t = TestApp {
            port,
            http: reqwest::Client::new(),
            state,
            _dir: dir,
        };
        t.wait_for_directory().await;
        t
    }

    /// The resource directory is filled by the first OFSC probe.
    async fn wait_for_directory(&self) {
        for _ in 0..100 {
            if self.state.ofsc_health.snapshot().reached {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn try_login(
        &self,
        user: &str,
        password: &str,
        device: &str,
        totp: Option<&str>,
    ) -> reqwest::Response {
        let mut body = json!({"username": user, "password": password, "deviceId": device});
        if let Some(code) = totp {
            body["totp"] = json!(code);
        }
        self.http
            .post(self.url("/sessions"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn login(&self, user: &str) -> Session {
        let device = format!("{user}-phone");
        let resp = self.try_login(user, "demo", &device, None).await;
        assert_eq!(resp.status(), 201, "login {user}");
        let body: Value = resp.json().await.unwrap();
        Session {
            access: body["accessToken"].as_str().unwrap().into(),
            refresh: body["refreshToken"].as_str().unwrap().into(),
            device,
            body,
        }
    }

    pub async fn refresh(&self, refresh: &str, device: &str) -> reqwest::Response {
        self.http
            .post(self.url("/sessions/refresh"))
            .json(&json!({"refreshToken": refresh, "deviceId": device}))
            .send()
            .await
            .unwrap()
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }
}

/// A service pointed at its own simulator on port 0 (so tests can inject faults), with
/// short timeouts and backoffs.
pub struct Stack {
    pub app: TestApp,
    pub sim: TestSim,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut fieldsync::config::Settings)) -> Stack {
        Self::start_seeded(fieldsync::sim::seed::DEMO_TENANT, configure).await
    }

    pub async fn start_seeded(
        seed_text: &str,
        configure: impl FnOnce(&mut fieldsync::config::Settings),
    ) -> Stack {
        let sim = TestSim::start_seeded(seed_text, AuthKind::Oauth2, Duration::from_secs(10)).await;
        Self::on_sim(sim, configure).await
    }

    /// The service in front of a simulator the caller started (and perhaps prepared).
    pub async fn on_sim(
        sim: TestSim,
        configure: impl FnOnce(&mut fieldsync::config::Settings),
    ) -> Stack {
        let url = sim.server.url();
        let app = TestApp::spawn(|s| {
            let mut tenant = TenantSettings::demo_at(&url);
            tenant.timeout_secs = 1;
            tenant.connect_timeout_secs = 1;
            s.ofsc = Some(tenant);
            s.replay.base_backoff_ms = 20;
            s.replay.max_backoff_ms = 400;
            s.replay.max_attempts = 200;
            s.cache.events_poll_ms = 100;
            configure(s);
        })
        .await;
        Stack { app, sim }
    }

    pub async fn status(
        &self,
        s: &Session,
        activity: i64,
        status: &str,
        key: &str,
    ) -> (u16, Value) {
        self.status_body(s, activity, json!({ "status": status }), key)
            .await
    }

    pub async fn status_body(
        &self,
        s: &Session,
        activity: i64,
        body: Value,
        key: &str,
    ) -> (u16, Value) {
        let resp = self
            .app
            .http
            .patch(self.app.url(&format!("/activities/{activity}/status")))
            .bearer_auth(&s.access)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn route(&self, s: &Session, date: &str) -> Value {
        let resp = self
            .app
            .call("get", &format!("/routes/{date}"), Some(&s.access))
            .await;
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    pub async fn op(&self, s: &Session, op_id: &str) -> Value {
        self.app
            .call("get", &format!("/ops/{op_id}"), Some(&s.access))
            .await
            .json()
            .await
            .unwrap()
    }

    /// Waits until every op in `ids` left the queue; returns their final records.
    pub async fn settle(&self, s: &Session, ids: &[String], within: Duration) -> Vec<Value> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let mut all = Vec::new();
            for id in ids {
                all.push(self.op(s, id).await);
            }
            if all
                .iter()
                .all(|o| !matches!(o["state"].as_str(), Some("queued" | "sending")))
            {
                return all;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "ops still queued: {:?}",
                all.iter()
                    .filter(|o| matches!(o["state"].as_str(), Some("queued" | "sending")))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ----- the built binary, for crash and restart tests -----

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process of the built binary, killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fieldsync"));
    let log = std::env::var("CRASH_LOG").ok().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    let stderr = log.map(Stdio::from).unwrap_or_else(Stdio::null);
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .env("RUST_LOG", "info");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Proc(cmd.spawn().unwrap())
}

pub async fn wait_up(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{url} did not come up");
}

/// The activity ids of a route's stops, in route order.
pub fn stop_ids(route: &Value) -> Vec<i64> {
    route["stops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["activityId"].as_i64().unwrap())
        .collect()
}

/// The secret of an `otpauth://` URI (what `users enroll-totp` shows once).
pub fn otpauth_secret(uri: &str) -> String {
    uri.split("secret=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("an otpauth URI with a secret")
        .to_string()
}

/// Flips a byte of a stored record's payload, so it fails its checksum when read.
pub fn corrupt(store: &dyn fieldsync::store::Storage, tree: fieldsync::store::Tree, key: &[u8]) {
    let mut raw = store.get_raw(tree, key).unwrap().unwrap();
    let last = raw.len() - 2;
    raw[last] ^= 0x01;
    store.insert_raw(tree, key, raw).unwrap();
}
