//! The supervisors' console in a real browser: headless Chromium driven through WebDriver
//! (chromedriver), against the service and its simulator on port 0.

use crate::helpers::{free_port, Session, Stack};
use fantoccini::{key::Key, Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver and a headless Chromium session; both end when dropped.
struct Browser {
    driver: Child,
    client: Client,
}

impl Drop for Browser {
    /// chromedriver and every Chromium process it started share a process group: all go,
    /// even when the test failed before it could end the session.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

async fn browser() -> Browser {
    let port = free_port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian: chromium-driver) is needed; .ci/run installs it");
    let caps: serde_json::Map<String, Value> = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900"],
        }
    })
    .as_object()
    .cloned()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot start a browser session: {e}"),
        }
    };
    Browser { driver, client }
}

impl Browser {
    async fn sign_in(&self, stack: &Stack, user: &str) {
        self.client
            .goto(&stack.app.url("/console/login"))
            .await
            .unwrap();
        self.fill("#username", user).await;
        self.fill("#password", "demo").await;
        self.click("button[type=submit]").await;
        // Signed in (or refused) once the login page is gone.
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.text("h1").await == "Sign in to the console" {
            assert!(Instant::now() < deadline, "{user}'s sign-in never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn fill(&self, css: &str, text: &str) {
        let el = self.client.find(Locator::Css(css)).await.unwrap();
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// The text of the first element matching `css`, once there is one (retrying while a
    /// navigation replaces the page).
    async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = el.text().await {
                    return t;
                }
            }
            assert!(Instant::now() < deadline, "{css} never appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the first element matching `css` shows exactly `want`.
    async fn wait_text(&self, css: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.text(css).await;
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} shows {got:?}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the browser is at `path`.
    async fn wait_path(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.path().await != path {
            assert!(Instant::now() < deadline, "never reached {path}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A real key press (WebDriver actions), as a keyboard user makes it.
    async fn press(&self, key: char) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let seq = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(seq).await.unwrap();
    }

    async fn type_keys(&self, text: &str) {
        for c in text.chars() {
            self.press(c).await;
        }
    }

    /// Presses Tab until the focused element's id (or href) is `target`.
    async fn tab_to(&self, target: &str) {
        let mut seen = Vec::new();
        for _ in 0..40 {
            self.press(Key::Tab.into()).await;
            let at = self
                .js("const e = document.activeElement; return e.id || e.getAttribute('href') || e.tagName;")
                .await;
            if at == json!(target) {
                return;
            }
            seen.push(at.to_string());
        }
        panic!("Tab never reached {target}; focus went {seen:?}");
    }

    async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Saves the page at a phone's and a desktop's width under target/console-screenshots.
    async fn screenshots(&self, name: &str) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("console-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        for (w, h) in [(375, 812), (1280, 900)] {
            self.client.set_window_size(w, h).await.unwrap();
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}-{w}.png")), png).unwrap();
        }
    }
}

/// tech works stop `index` of today's route to completion, with a location and a photo;
/// answers the activity id.
async fn complete_stop(stack: &Stack, tech: &Session, resource: &str, index: usize) -> i64 {
    let date = stack.sim.today_route(resource).await.0;
    let route = stack.route(tech, &date).await;
    let id = route["stops"][index]["activityId"].as_i64().unwrap();
    let photo = fieldsync::features::uploads::samples::photo(400, 300, index as u64 + 1, None);
    let key = format!("{resource}-{index}-photo");
    let (code, g) =
        crate::uploads::grant(stack, tech, id, "photo", "image/jpeg", &photo, &key).await;
    assert_eq!(code, 201, "{g}");
    let done = crate::uploads::upload_all(
        &stack.app.http,
        g["upload"]["url"].as_str().unwrap(),
        &photo,
    )
    .await;
    assert_eq!(done.status(), 201);
    let att = g["attachmentId"].as_str().unwrap();
    assert_eq!(
        crate::uploads::settled(stack, tech, id, att).await["state"],
        "complete"
    );
    for (n, body) in [
        json!({"status": "enroute"}),
        json!({"status": "started"}),
        json!({"status": "completed", "notes": "replaced the ONT",
               "location": {"lat": 40.7128, "lng": -74.006, "accuracy": 8.0}}),
    ]
    .into_iter()
    .enumerate()
    {
        let (code, body) = stack
            .status_body(tech, id, body, &format!("{resource}-{index}-{n}"))
            .await;
        assert_eq!(code, 202, "{body}");
    }
    id
}

/// The pending approval of an activity, through the API.
async fn approval_of(stack: &Stack, activity: i64) -> Value {
    let sup = stack.app.login("super1").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list: Value = stack
            .app
            .call("get", "/approvals?status=pending", Some(&sup.access))
            .await
            .json()
            .await
            .unwrap();
        if let Some(a) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["activityId"] == activity)
        {
            return a.clone();
        }
        assert!(Instant::now() < deadline, "no approval for {activity}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn approval_status(stack: &Stack, id: &str) -> String {
    let sup = stack.app.login("super1").await;
    let a: Value = stack
        .app
        .call("get", &format!("/approvals/{id}"), Some(&sup.access))
        .await
        .json()
        .await
        .unwrap();
    a["status"].as_str().unwrap().to_string()
}

/// Waits until OFSC (the simulator) shows `label` = `value` on the activity.
async fn ofsc_property(stack: &Stack, activity: i64, label: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = stack.sim.client.get_activity(activity).await.unwrap();
        if a.properties.get(label) == Some(&json!(value)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{label} never became {value}: {:?}",
            a.properties
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_approves_and_rejects_in_the_browser() {
    let stack = Stack::start().await;
    let tech = stack.app.login("tech1").await;
    let b = browser().await;
    b.sign_in(&stack, "super1").await;
    b.wait_path("/console/approvals").await;
    b.screenshots("inbox-empty").await;
    b.client.set_window_size(1280, 900).await.unwrap();
    // A marker that a reload would wipe.
    b.js("window.__noReload = true; return 1;").await;

    let first = complete_stop(&stack, &tech, "tech1", 0).await;
    let link = "a[href^='/console/approvals/apr_']";
    let row_text = b.text(link).await;
    assert_eq!(row_text, format!("Job {first}"));
    assert_eq!(
        b.js("return window.__noReload === true;").await,
        json!(true),
        "the row arrived without a reload"
    );
    assert_eq!(b.text("#pending-count").await, "1");
    b.screenshots("inbox").await;
    b.client.set_window_size(1280, 900).await.unwrap();

    b.click(link).await;
    let distance = b.text("#distance").await;
    assert!(
        distance.ends_with("m from the job's location"),
        "{distance}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while b
        .js("const i = document.querySelector('.thumbs img'); return !!i && i.complete && i.naturalWidth > 0;")
        .await
        != json!(true)
    {
        assert!(Instant::now() < deadline, "the thumbnail did not load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.screenshots("approval").await;
    b.client.set_window_size(1280, 900).await.unwrap();
    b.click("#approve").await;
    let decided = b.text("#decided").await;
    assert!(
        decided.starts_with("Approved by Sam Supervisor"),
        "{decided}"
    );
    ofsc_property(&stack, first, "XA_APPROVAL_STATUS", "approved").await;

    // Reject the next one with a reason; the reopen reaches OFSC and tech1 hears of it.
    let cursor = {
        let r: Value = stack
            .app
            .call("get", "/sync/pull", Some(&tech.access))
            .await
            .json()
            .await
            .unwrap();
        r["nextCursor"].as_str().unwrap().to_string()
    };
    let second = complete_stop(&stack, &tech, "tech1", 1).await;
    let approval = approval_of(&stack, second).await;
    let id = approval["approvalId"].as_str().unwrap();
    b.client
        .goto(&stack.app.url(&format!("/console/approvals/{id}")))
        .await
        .unwrap();
    b.fill("#reject-comment", "no photo of the meter").await;
    b.click("#reject").await;
    let decided = b.text("#decided").await;
    assert!(decided.contains("Rejected"), "{decided}");
    assert!(decided.contains("reopened"), "{decided}");
    ofsc_property(&stack, second, "XA_APPROVAL_STATUS", "rejected").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stack
        .sim
        .ledger()
        .await
        .iter()
        .any(|e| e["action"] == "reopen" && e["activityId"] == second)
    {
        assert!(Instant::now() < deadline, "the reopen never reached OFSC");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The change is published once its group commit is on disk: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pulled: Value = stack
            .app
            .call(
                "get",
                &format!("/sync/pull?cursor={cursor}"),
                Some(&tech.access),
            )
            .await
            .json()
            .await
            .unwrap();
        let heard = pulled["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "approval" && c["data"]["status"] == "rejected");
        if heard {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tech1 never heard of the rejection: {pulled}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    b.client
        .goto(&stack.app.url("/console/team"))
        .await
        .unwrap();
    b.wait_text("h1", "Team today").await;
    b.screenshots("team").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_what_it_must() {
    let stack = Stack::start().await;
    let tech = stack.app.login("tech1").await;
    let first = complete_stop(&stack, &tech, "tech1", 0).await;
    let approval = approval_of(&stack, first).await;
    let id = approval["approvalId"].as_str().unwrap().to_string();
    let b = browser().await;

    // A technician cannot sign in.
    b.sign_in(&stack, "tech1").await;
    b.wait_text("h1", "Forbidden").await;

    // A form post without its CSRF token changes nothing.
    b.sign_in(&stack, "super1").await;
    b.client
        .goto(&stack.app.url(&format!("/console/approvals/{id}")))
        .await
        .unwrap();
    b.js("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove()); return 1;")
        .await;
    b.click("#approve").await;
    b.wait_text("h1", "Forbidden").await;
    assert_eq!(approval_status(&stack, &id).await, "pending");

    // An expired session goes back to the login page.
    let store = stack.app.state.store.as_ref();
    use fieldsync::console::session::{ConsoleSession, SESSIONS};
    use fieldsync::store::{Storage, StorageExt};
    for (k, v) in store.scan_raw(SESSIONS, b"", None, usize::MAX).unwrap() {
        let mut s: ConsoleSession = fieldsync::store::record::open(SESSIONS, &k, &v).unwrap();
        s.last_seen -= chrono::Duration::hours(2);
        store.put(SESSIONS, &k, &s).unwrap();
    }
    b.client
        .goto(&stack.app.url("/console/approvals"))
        .await
        .unwrap();
    assert_eq!(b.path().await, "/console/login");
    b.screenshots("login").await;

    // A supervisor who does not oversee tech1 gets a 404 page for tech1's approval.
    fieldsync::auth::users::add(
        store,
        fieldsync::auth::users::NewUser {
            username: "super2".into(),
            name: "Other Supervisor".into(),
            role: fieldsync::auth::Role::Supervisor,
            resource_id: None,
            oversees: vec!["tech3".into()],
            oversees_parent: None,
            password: "demo".into(),
        },
    )
    .unwrap();
    b.sign_in(&stack, "super2").await;
    b.client
        .goto(&stack.app.url(&format!("/console/approvals/{id}")))
        .await
        .unwrap();
    b.wait_text("h1", "Not Found").await;
    assert_eq!(approval_status(&stack, &id).await, "pending");

    // Two deciders at once: the one whose page is older loses and sees what happened.
    b.sign_in(&stack, "super1").await;
    b.client
        .goto(&stack.app.url(&format!("/console/approvals/{id}")))
        .await
        .unwrap();
    b.fill("#approve-comment", "looks fine").await;
    let admin = stack.app.login("admin").await;
    let first = stack
        .app
        .http
        .post(stack.app.url(&format!("/approvals/{id}/decision")))
        .bearer_auth(&admin.access)
        .header("Idempotency-Key", "admin-decides")
        .json(&json!({"decision": "reject", "comment": "meter photo missing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    b.click("#approve").await;
    let notice = b.text("p.notice.bad").await;
    assert!(notice.contains("Another supervisor decided"), "{notice}");
    let decided = b.text("#decided").await;
    assert!(
        decided.starts_with("Rejected by Administrator"),
        "{decided}"
    );
    assert_eq!(approval_status(&stack, &id).await, "rejected");

    // Admins see the queue page.
    b.sign_in(&stack, "admin").await;
    b.client
        .goto(&stack.app.url("/console/queue"))
        .await
        .unwrap();
    b.wait_text("h1", "Queue health").await;
    b.screenshots("queue").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_can_be_made_with_the_keyboard_alone() {
    let stack = Stack::start().await;
    let tech = stack.app.login("tech2").await;
    let activity = complete_stop(&stack, &tech, "tech2", 0).await;
    let approval = approval_of(&stack, activity).await;
    let b = browser().await;
    b.client
        .goto(&stack.app.url("/console/login"))
        .await
        .unwrap();
    // Sign in, find the approval and approve it with Tab, typing and Enter only.
    b.tab_to("username").await;
    b.type_keys("super1").await;
    b.press(Key::Tab.into()).await;
    b.type_keys("demo").await;
    b.press(Key::Enter.into()).await;
    b.wait_path("/console/approvals").await;
    let link = format!(
        "/console/approvals/{}",
        approval["approvalId"].as_str().unwrap()
    );
    b.tab_to(&link).await;
    b.press(Key::Enter.into()).await;
    b.wait_path(&link).await;
    b.tab_to("approve").await;
    b.press(Key::Enter.into()).await;
    let decided = b.text("#decided").await;
    assert!(decided.starts_with("Approved"), "{decided}");
    ofsc_property(&stack, activity, "XA_APPROVAL_STATUS", "approved").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_signs_in_to_the_console_with_sso() {
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/console/sso/callback");
    let idp = crate::idp::Idp::start_with("k1", Some(&redirect)).await;
    let oidc = fieldsync::config::OidcSettings {
        issuer: idp.issuer.clone(),
        client_id: "fieldsync-app".into(),
        console_client_id: Some("fieldsync-console".into()),
        client_secret: Some(fieldsync::config::Secret::new(
            "console-secret-for-tests-only",
        )),
        scopes: vec!["openid".into(), "profile".into()],
        resource_claim: Some("ofsc_resource".into()),
        role_map: [
            (
                "fs-technicians".to_string(),
                fieldsync::auth::Role::Technician,
            ),
            (
                "fs-supervisors".to_string(),
                fieldsync::auth::Role::Supervisor,
            ),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let stack = Stack::start_with(move |s| {
        s.server.listen = format!("127.0.0.1:{port}");
        s.oidc = Some(oidc);
    })
    .await;
    let b = browser().await;
    for (login, lands_on) in [
        ("super1", "Approvals waiting for you"),
        ("tech1", "Forbidden"),
    ] {
        // A new browser profile each time: the provider would otherwise remember who
        // signed in before and not ask.
        b.client.delete_all_cookies().await.unwrap();
        b.client
            .goto(&stack.app.url("/console/login"))
            .await
            .unwrap();
        b.click("#sso").await;
        // The provider's own sign-in page.
        let deadline = Instant::now() + Duration::from_secs(20);
        while b
            .client
            .find(Locator::Css("input[name=login]"))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                panic!(
                    "the provider's login page never came: at {} {}",
                    b.client.current_url().await.unwrap(),
                    b.client.source().await.unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(b
            .client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&idp.issuer));
        b.fill("input[name=login]", login).await;
        b.fill("input[name=password]", "any").await;
        b.click("button[type=submit]").await;
        b.wait_text("h1", lands_on).await;
        if login == "super1" {
            b.wait_path("/console/approvals").await;
            assert!(b.text("header").await.contains("Sam Supervisor"));
            b.click("header button[type=submit]").await;
            b.wait_path("/console/login").await;
        }
    }
}
