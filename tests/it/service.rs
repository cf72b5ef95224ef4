//! The service itself: startup on port 0, probes, the problem envelope, and the binary's CLI.

use fieldsync::config::{Settings, TenantSettings};
use fieldsync::startup::Application;
use serde_json::Value;
use std::time::Duration;

pub struct TestApp {
    pub port: u16,
    pub http: reqwest::Client,
    pub _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(configure: impl FnOnce(&mut Settings)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.server.listen = "127.0.0.1:0".into();
        settings.server.data_dir = dir.path().join("data");
        settings.server.workers = 2;
        settings.server.ofsc_probe_secs = 1;
        configure(&mut settings);
        let app = Application::build(settings).await.unwrap();
        let port = app.port();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            port,
            http: reqwest::Client::new(),
            _dir: dir,
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
}

#[tokio::test]
async fn embedded_default_is_ready_with_the_simulator() {
    let app = TestApp::spawn(|_| {}).await;
    assert_eq!(app.get_json("/healthz").await.0, 200);
    let mut ready = (0, Value::Null);
    for _ in 0..50 {
        ready = app.get_json("/readyz").await;
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    assert_eq!(ready.1["sled"], "ok");
    assert_eq!(ready.1["ofsc"]["state"], "ok");
}

#[tokio::test]
async fn readiness_fails_while_ofsc_was_never_reached() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::spawn(|s| s.ofsc = Some(TenantSettings::demo_at(&url))).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ofsc"]["state"], "not-yet-reached");
    assert!(body["ofsc"]["lastError"].as_str().is_some());
    assert_eq!(app.get_json("/healthz").await.0, 200);
}

#[tokio::test]
async fn unknown_paths_get_a_problem_body() {
    let app = TestApp::spawn(|_| {}).await;
    let resp = app
        .http
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "not-found");
    assert_eq!(body["status"], 404);
}

#[test]
fn print_config_redacts_secrets_and_shows_layers() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fieldsync"))
        .arg("--print-config")
        .env(
            "FIELDSYNC__OFSC__BASE_URL",
            "https://acme.fs.ocs.oraclecloud.com",
        )
        .env("FIELDSYNC__OFSC__INSTANCE", "acme")
        .env("FIELDSYNC__OFSC__CLIENT_ID", "app")
        .env("FIELDSYNC__OFSC__CLIENT_SECRET", "topsecret-value")
        .env("FIELDSYNC__DEMO__PASSWORD", "another-secret")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("acme.fs.ocs.oraclecloud.com"), "{text}");
    assert!(
        !text.contains("topsecret-value") && !text.contains("another-secret"),
        "{text}"
    );
    assert!(text.contains("<redacted>"));
}

#[test]
fn ofsc_sim_subcommand_serves_the_demo_tenant() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fieldsync"))
        .args(["ofsc-sim", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::blocking::Client::new();
    let mut status = None;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!(
                "http://127.0.0.1:{port}/rest/ofscCore/v1/resources/tech2"
            ))
            .basic_auth("fieldsync-demo@demo", Some("demo"))
            .send()
        {
            status = Some(r.status().as_u16());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ledger = client
        .get(format!("http://127.0.0.1:{port}/__sim/ledger"))
        .send()
        .map(|r| r.status().as_u16());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, Some(200));
    assert_eq!(ledger.ok(), Some(200));
}
