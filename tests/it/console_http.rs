//! The console over plain HTTP: its headers, cookie attributes, cached assets, TOTP at
//! sign-in, login throttling, and refusals of forged or missing sessions.

use crate::helpers::TestApp;
use fieldsync::auth::{totp, users};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn login(
    app: &TestApp,
    http: &reqwest::Client,
    user: &str,
    password: &str,
    totp: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("username", user), ("password", password)];
    if let Some(t) = totp {
        form.push(("totp", t));
    }
    http.post(app.url("/console/login"))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// The CSRF token of the first form on a console page.
fn csrf_in(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a form with a CSRF token")
        .to_string()
}

/// A GET with the console session cookie.
async fn get_with(http: &reqwest::Client, url: String, cookie: &str) -> reqwest::Response {
    http.get(url).header("Cookie", cookie).send().await.unwrap()
}

fn session_cookie(resp: &reqwest::Response) -> String {
    let set = resp
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    assert!(set.contains("Path=/console"), "{set}");
    // Plain HTTP here: Secure would make the browser drop it; over TLS it is set.
    assert!(!set.contains("Secure"), "{set}");
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_assets_are_cached_by_hash() {
    let app = TestApp::spawn(|_| {}).await;
    let http = client();
    let resp = http.get(app.url("/console/login")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    let page = resp.text().await.unwrap();
    assert!(!page.contains("<script>"), "no inline script");
    let css = page
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|u| u.ends_with(".css")))
        .unwrap()
        .to_string();
    let asset = http.get(app.url(&css)).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert!(asset.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age=31536000"));
    let etag = asset.headers()["etag"].to_str().unwrap().to_string();
    let again = http
        .get(app.url(&css))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(
        http.get(app.url("/console/assets/console.0000.css"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn totp_is_asked_for_and_failed_logins_are_throttled() {
    let app = TestApp::spawn(|_| {}).await;
    let http = client();
    let uri = users::enroll_totp(app.state.store.as_ref(), "super1").unwrap();
    let secret = crate::helpers::otpauth_secret(&uri);
    let asked = login(&app, &http, "super1", "demo", None).await;
    assert_eq!(asked.status(), 401);
    assert!(asked.text().await.unwrap().contains("name=\"totp\""));
    let wrong = login(&app, &http, "super1", "demo", Some("000000")).await;
    assert_eq!(wrong.status(), 401);
    let code = totp::code_at(&secret, chrono::Utc::now().timestamp() as u64).unwrap();
    let ok = login(&app, &http, "super1", "demo", Some(&code)).await;
    assert_eq!(ok.status(), 303);
    let cookie = session_cookie(&ok);
    let inbox = get_with(&http, app.url("/console/approvals"), &cookie).await;
    assert_eq!(inbox.status(), 200);

    // The API's throttle: five wrong passwords, then 429 even with the right one.
    for _ in 0..5 {
        assert_eq!(
            login(&app, &http, "admin", "wrong", None).await.status(),
            401
        );
    }
    assert_eq!(
        login(&app, &http, "admin", "demo", None).await.status(),
        429
    );
}

#[tokio::test]
async fn forged_missing_and_ended_sessions_go_to_the_login_page() {
    let app = TestApp::spawn(|_| {}).await;
    let http = client();
    for cookie in [None, Some("fs_console=forged")] {
        let mut req = http.get(app.url("/console/approvals"));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 303);
        assert_eq!(resp.headers()["location"], "/console/login");
    }
    let ok = login(&app, &http, "super1", "demo", None).await;
    let cookie = session_cookie(&ok);
    let page = get_with(&http, app.url("/console/approvals"), &cookie)
        .await
        .text()
        .await
        .unwrap();
    let csrf = csrf_in(&page);
    // Logout needs the form token too.
    let refused = http
        .post(app.url("/console/logout"))
        .header("Cookie", &cookie)
        .form(&[("csrf", "not-it")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let out = http
        .post(app.url("/console/logout"))
        .header("Cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = get_with(&http, app.url("/console/approvals"), &cookie).await;
    assert_eq!(
        after.status(),
        303,
        "the old cookie is worthless after logout"
    );
    // Disabling the user ends a live session too.
    let again = session_cookie(&login(&app, &http, "super1", "demo", None).await);
    users::disable(app.state.store.as_ref(), "super1").unwrap();
    let gone = get_with(&http, app.url("/console/approvals"), &again).await;
    assert_eq!(gone.status(), 303);
}

/// The admin's queue page: dead ops listed with retry and discard, failed webhook deliveries
/// with redeliver; each goes through the admin API's own function (state change, audit),
/// and is refused without the form token.
#[tokio::test]
async fn the_queue_page_retries_discards_and_redelivers() {
    use serde_json::{json, Value};
    use std::time::Duration;
    let stack = crate::helpers::Stack::start_with(|s| {
        s.replay.max_attempts = 2;
        // Nothing listens on port 9: every delivery fails, at once and for good.
        s.webhooks.endpoints = vec![fieldsync::config::WebhookEndpoint {
            url: "http://127.0.0.1:9/hook".into(),
            secret: fieldsync::config::Secret::new("a-webhook-secret-of-32-bytes-long"),
            events: vec!["op.dead".into()],
        }];
        s.webhooks.max_attempts = 1;
    })
    .await;
    let tech = stack.app.login("tech2").await;
    let admin = stack.app.login("admin").await;
    let date = stack.sim.today_route("tech2").await.0;
    let first = crate::helpers::stop_ids(&stack.route(&tech, &date).await)[0];
    stack.sim.faults(json!({"rate5xx": 1.0})).await;
    let (_, started) = stack.status(&tech, first, "started", "q1").await;
    let op = started["opId"].as_str().unwrap().to_string();
    let done = stack
        .settle(&tech, std::slice::from_ref(&op), Duration::from_secs(20))
        .await;
    assert_eq!(done[0]["state"], "dead", "{done:?}");
    stack.sim.faults(json!({})).await;

    let http = client();
    let cookie = session_cookie(&login(&stack.app, &http, "admin", "demo", None).await);
    let page = || async {
        get_with(&http, stack.app.url("/console/queue"), &cookie)
            .await
            .text()
            .await
            .unwrap()
    };
    let shown = page().await;
    let csrf = csrf_in(&shown);
    // Every dead op, in queue order: the route's activation died ahead of the start.
    let dead: Vec<String> = shown
        .split("action=\"/console/queue/ops/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect();
    assert_eq!(dead.len(), 2, "{shown}");
    assert_eq!(dead[1], op);
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let (http, cookie, url) = (http.clone(), cookie.clone(), stack.app.url(""));
        async move {
            http.post(format!("{url}{path}"))
                .header("Cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let act = |id: &str, action: &'static str, token: &str| {
        post(
            format!("/console/queue/ops/{id}"),
            vec![("csrf", token.to_string()), ("action", action.to_string())],
        )
    };
    assert_eq!(act(&op, "retry", "wrong").await, 403);
    for id in &dead {
        assert_eq!(act(id, "retry", &csrf).await, 303);
    }
    let again = stack.settle(&admin, &dead, Duration::from_secs(20)).await;
    assert!(again.iter().all(|o| o["state"] == "applied"), "{again:?}");

    // Another dead op, discarded from the page.
    stack.sim.faults(json!({"rate5xx": 1.0})).await;
    let (_, done2) = stack.status(&tech, first, "completed", "q2").await;
    let op2 = done2["opId"].as_str().unwrap().to_string();
    let gone = stack
        .settle(&tech, std::slice::from_ref(&op2), Duration::from_secs(20))
        .await;
    assert_eq!(gone[0]["state"], "dead");
    stack.sim.faults(json!({})).await;
    assert_eq!(act(&op2, "discard", &csrf).await, 303);
    let op2_now: Value = stack
        .app
        .call("get", &format!("/ops/{op2}"), Some(&admin.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(op2_now["state"], "discarded");

    // The dead ops' webhook deliveries failed; one is redelivered from the page.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let delivery = loop {
        let failed: Value = stack
            .app
            .call("get", "/admin/webhooks/deliveries", Some(&admin.access))
            .await
            .json()
            .await
            .unwrap();
        if let Some(d) = failed["items"].as_array().unwrap().first() {
            break d["deliveryId"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no failed delivery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(page()
        .await
        .contains(&format!("/console/queue/deliveries/{delivery}")));
    let redeliver = format!("/console/queue/deliveries/{delivery}");
    assert_eq!(
        post(redeliver.clone(), vec![("csrf", "wrong".to_string())]).await,
        403
    );
    assert_eq!(post(redeliver, vec![("csrf", csrf.clone())]).await, 303);
    let audit: Value = stack
        .app
        .call("get", "/audit?limit=1000", Some(&admin.access))
        .await
        .json()
        .await
        .unwrap();
    let by_console = |action: &str, object: &str| {
        audit["items"].as_array().unwrap().iter().any(|e| {
            e["action"] == action
                && e["object"] == object
                && e["user"] == "admin"
                && e["device"] == "console"
        })
    };
    assert!(by_console("op.retry", &op), "{audit}");
    assert!(by_console("op.discard", &op2), "{audit}");
    assert!(by_console("webhook.redeliver", &delivery), "{audit}");

    // A supervisor is not an admin: the page is refused.
    let sup = session_cookie(&login(&stack.app, &http, "super1", "demo", None).await);
    let refused = get_with(&http, stack.app.url("/console/queue"), &sup).await;
    assert_eq!(refused.status(), 403);
}

/// The inbox pages (25 rows, then "Next page", then "First page") and filters by
/// technician, date and activity type, keeping the filters in the links and the refresh.
#[tokio::test]
async fn the_inbox_pages_and_filters() {
    use fieldsync::features::approvals::{self, Approval, ApprovalStatus};
    use fieldsync::store::Storage;
    let app = TestApp::spawn(|_| {}).await;
    let store = app.state.store.as_ref();
    let tech = users::get(store, "tech1").unwrap().unwrap();
    let earlier = chrono::Utc::now() - chrono::Duration::hours(1);
    // 30 pending approvals of tech1's work (odd ones a day earlier, every third a repair),
    // and 2 of tech2's.
    let mut made = Vec::new();
    for i in 0..32u64 {
        let (seq, event) = (store.next_id().unwrap(), store.next_id().unwrap());
        let resource = if i < 30 { "tech1" } else { "tech2" };
        let a = Approval {
            id: approvals::approval_id(seq),
            seq,
            activity_id: 9_000 + i as i64,
            resource_id: resource.into(),
            date: if i % 2 == 1 {
                "2026-11-30"
            } else {
                "2026-12-01"
            }
            .into(),
            activity_type: Some(if i % 3 == 0 { "REPAIR" } else { "INST" }.into()),
            technician: resource.into(),
            technician_user_id: tech.id.clone(),
            completion_op_id: format!("op_{i}"),
            status: ApprovalStatus::Pending,
            requested_at: earlier,
            decision: None,
        };
        store
            .append("test.approval", Default::default(), &|tx| {
                approvals::put_in(tx, &a, event)
            })
            .unwrap();
        made.push(a);
    }
    app.state.commit.flush().await.unwrap();
    let http = client();
    let cookie = session_cookie(&login(&app, &http, "super1", "demo", None).await);
    let get = |query: String| {
        let url = app.url(&format!("/console/approvals{query}"));
        let (http, cookie) = (&http, &cookie);
        async move { get_with(http, url, cookie).await.text().await.unwrap() }
    };
    let rows = |page: &str| page.matches("href=\"/console/approvals/apr_").count();
    let first = get(String::new()).await;
    assert_eq!(rows(&first), 25);
    assert!(first.contains(">32</span>"), "the header counts all 32");
    let next = first
        .split("href=\"/console/approvals?")
        .find(|s| s.contains(">Next page<"))
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .expect("a next page link");
    let second = get(format!("?{next}")).await;
    assert_eq!(rows(&second), 7);
    assert!(second.contains(">First page<"));
    assert!(!second.contains(">Next page<"));

    let by_tech = get("?technician=tech2".into()).await;
    assert_eq!(rows(&by_tech), 2);
    assert!(by_tech.contains("data-refresh=\"/console/approvals/rows?technician=tech2"));
    let by_date = get("?date=2026-11-30".into()).await;
    assert_eq!(rows(&by_date), 16);
    let by_type = get("?type=REPAIR&technician=tech1".into()).await;
    assert_eq!(rows(&by_type), 10);
    // The self-refresh answers the same rows for the same filters.
    let refreshed = get_with(
        &http,
        app.url("/console/approvals/rows?type=REPAIR&technician=tech1"),
        &cookie,
    )
    .await;
    assert_eq!(refreshed.headers()["x-pending-count"], "32");
    assert_eq!(rows(&refreshed.text().await.unwrap()), 10);
    let bad = get_with(&http, app.url("/console/approvals?after=nonsense"), &cookie).await;
    assert_eq!(bad.status(), 400);
}
