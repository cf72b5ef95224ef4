//! The service itself: startup on port 0, probes, the problem envelope, and the binary's CLI.

use crate::helpers::TestApp;
use fieldsync::config::TenantSettings;
use serde_json::Value;
use std::time::Duration;

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
    // Unauthenticated: states, never the upstream's address or error text.
    let text = body.to_string();
    assert!(
        !text.contains(&url) && !text.contains("127.0.0.1"),
        "{text}"
    );
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

fn fieldsync(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fieldsync"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn users_cli_manages_users_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let add = [
        "users",
        "--data-dir",
        d,
        "add",
        "--username",
        "dana",
        "--name",
        "Dana Lead",
        "--role",
        "supervisor",
        "--parent",
        "field-ops",
    ];
    let (ok, out, err) = fieldsync(&add, Some("s3cret-pass\n"));
    assert!(ok, "{err}");
    assert!(out.contains("added dana"));
    let (ok, _, err) = fieldsync(&add, Some("again\n"));
    assert!(!ok && err.contains("already exists"));
    let bad = [
        "users",
        "--data-dir",
        d,
        "add",
        "--username",
        "t",
        "--name",
        "T",
        "--role",
        "technician",
    ];
    assert!(
        !fieldsync(&bad, Some("pw12\n")).0,
        "a technician needs a resource"
    );
    let (ok, out, _) = fieldsync(&["users", "--data-dir", d, "enroll-totp", "dana"], None);
    assert!(
        ok && out.starts_with("otpauth://totp/fieldsync:dana?"),
        "{out}"
    );
    let (ok, _, _) = fieldsync(
        &["users", "--data-dir", d, "set-password", "dana"],
        Some("new-pass\n"),
    );
    assert!(ok);
    let (ok, _, _) = fieldsync(&["users", "--data-dir", d, "disable", "dana"], None);
    assert!(ok);
    let (ok, out, _) = fieldsync(&["users", "--data-dir", d, "list"], None);
    assert!(ok);
    assert!(
        out.contains("dana")
            && out.contains("parent=field-ops")
            && out.contains("disabled")
            && out.contains("totp"),
        "{out}"
    );
    assert!(!out.contains("argon2"), "never prints hashes");
    assert!(!fieldsync(&["users", "--data-dir", d, "disable", "nobody"], None).0);
    let store = fieldsync::store::SledStore::open(dir.path()).unwrap();
    let actions: Vec<(String, String)> = fieldsync::features::audit::list(&store, 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| (e.action, e.object))
        .collect();
    let want = [
        "user.add",
        "user.enroll-totp",
        "user.set-password",
        "user.disable",
    ]
    .map(|a| (a.to_string(), "dana".to_string()));
    assert_eq!(actions, want, "administrative changes are audited");
}

/// The data directory holds keys and session secrets: it is made 0700 with 0600 files, and
/// a directory its group or others may enter is refused at start with what to do about it
/// (unless `server.allow_shared_data_dir`).
#[tokio::test]
async fn the_data_directory_is_private_and_a_shared_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let settings = |dir: &std::path::Path, allow: bool| {
        let mut s = fieldsync::config::Settings::default();
        s.server.listen = "127.0.0.1:0".into();
        s.server.data_dir = dir.to_path_buf();
        s.server.allow_shared_data_dir = allow;
        s
    };
    let root = tempfile::tempdir().unwrap();
    let fresh = root.path().join("fresh");
    let app = fieldsync::startup::Application::build(settings(&fresh, false))
        .await
        .unwrap();
    drop(app);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("db")), 0o600, "sled's data file");

    let shared = root.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let refused = fieldsync::startup::Application::build(settings(&shared, false)).await;
    let Err(e) = refused else {
        panic!("a 0755 data directory was accepted")
    };
    assert!(e.to_string().contains("chmod 700"), "{e}");
    assert!(
        fieldsync::startup::Application::build(settings(&shared, true))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_method_a_path_does_not_have_gets_405_with_allow() {
    let app = TestApp::spawn(|_| {}).await;
    for (method, path, allow) in [
        ("DELETE", "/me", "GET"),
        ("PUT", "/activities/1/status", "PATCH"),
        ("GET", "/sync/push", "POST"),
        ("PUT", "/sessions", "POST, DELETE"),
        ("GET", "/uploads/att_1", "POST, HEAD, PATCH, DELETE"),
    ] {
        let resp = app
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(path),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{method} {path}");
        assert_eq!(resp.headers()["allow"], allow, "{method} {path}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "method-not-allowed");
    }
    // A path that does not exist is still 404, and the right method still works.
    let resp = app
        .http
        .delete(app.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(app.get_json("/healthz").await.0, 200);
}

#[tokio::test]
async fn a_limit_outside_the_specs_bounds_is_400_not_clamped() {
    let app = TestApp::spawn(|_| {}).await;
    let s = app.login("super1").await;
    for path in [
        "/audit?limit=1001",
        "/audit?limit=0",
        "/approvals?limit=501",
        "/admin/ops?limit=501",
        "/sync/pull?limit=9999",
    ] {
        let resp = app.call("get", path, Some(&s.access)).await;
        assert_eq!(resp.status(), 400, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid-query", "{path}");
    }
    for path in ["/audit?limit=1000", "/approvals?limit=1", "/admin/ops"] {
        let resp = app.call("get", path, Some(&s.access)).await;
        assert_eq!(resp.status(), 200, "{path}");
    }
}
