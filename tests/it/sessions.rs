//! Sessions: login, access-token checks, refresh rotation and reuse, TOTP, throttling.

use crate::helpers::{TestApp, JWT_SECRET};
use fieldsync::auth::tokens::AccessClaims;
use fieldsync::auth::{totp, users};
use fieldsync::store::Storage;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

async fn problem(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn login_returns_the_documented_session() {
    let app = TestApp::spawn(|_| {}).await;
    let s = app.login("tech1").await;
    assert_eq!(s.body["tokenType"], "Bearer");
    assert!(s.body["expiresIn"].as_i64().unwrap() > 800);
    assert_eq!(s.body["user"]["role"], "technician");
    assert_eq!(s.body["user"]["resourceId"], "tech1");
    assert_eq!(s.body["user"]["name"], "Ana Torres");
    let me: Value = app
        .call("get", "/me", Some(&s.access))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "tech1");
    assert_eq!(me["deviceId"], "tech1-phone");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let app = TestApp::spawn(|_| {}).await;
    let (s1, b1) = problem(app.try_login("tech1", "nope", "d", None).await).await;
    let (s2, b2) = problem(app.try_login("ghost", "demo", "d", None).await).await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(b1, b2);
    assert_eq!(b1["code"], "invalid-credentials");
    let (s, b) = problem(
        app.http
            .post(app.url("/sessions"))
            .body("{nope")
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["code"].as_str().unwrap()), (400, "malformed-json"));
    let (s, b) = problem(
        app.http
            .post(app.url("/sessions"))
            .json(&json!({"username": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["code"].as_str().unwrap()), (400, "invalid-body"));
}

fn forge(claims: &AccessClaims, alg: Algorithm, key: &[u8]) -> String {
    encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

#[tokio::test]
async fn every_bad_access_token_is_401_with_a_problem() {
    let app = TestApp::spawn(|_| {}).await;
    let s = app.login("tech1").await;
    let good = app.state.keys.verify(&s.access).unwrap();
    let now = chrono::Utc::now().timestamp();
    let key = JWT_SECRET.as_bytes();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut cases: Vec<(&str, String)> = vec![
        (
            "forged signature",
            forge(
                &good,
                Algorithm::HS256,
                b"not-the-key-not-the-key-not-the-key",
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
                b64.encode(serde_json::to_vec(&good).unwrap())
            ),
        ),
        ("other algorithm", forge(&good, Algorithm::HS384, key)),
        (
            "expired",
            forge(
                &AccessClaims {
                    iat: now - 7200,
                    exp: now - 3600,
                    ..good.clone()
                },
                Algorithm::HS256,
                key,
            ),
        ),
        (
            "wrong aud",
            forge(
                &AccessClaims {
                    aud: "someone-else".into(),
                    ..good.clone()
                },
                Algorithm::HS256,
                key,
            ),
        ),
        (
            "wrong iss",
            forge(
                &AccessClaims {
                    iss: "evil".into(),
                    ..good.clone()
                },
                Algorithm::HS256,
                key,
            ),
        ),
        (
            "other typ",
            forge(
                &AccessClaims {
                    typ: "upload".into(),
                    ..good.clone()
                },
                Algorithm::HS256,
                key,
            ),
        ),
        ("garbage", "abc.def.ghi".into()),
    ];
    let no_sub = json!({"iss": good.iss, "aud": good.aud, "exp": good.exp, "iat": good.iat, "typ": "access", "did": good.did, "fam": good.fam});
    cases.push((
        "missing sub",
        encode(
            &Header::new(Algorithm::HS256),
            &no_sub,
            &EncodingKey::from_secret(key),
        )
        .unwrap(),
    ));
    let not_yet = json!({"iss": good.iss, "aud": good.aud, "sub": good.sub, "exp": good.exp, "iat": good.iat,
                         "nbf": now + 3600, "typ": "access", "did": good.did, "fam": good.fam});
    cases.push((
        "not valid before an hour from now",
        encode(
            &Header::new(Algorithm::HS256),
            &not_yet,
            &EncodingKey::from_secret(key),
        )
        .unwrap(),
    ));
    cases.push((
        "the session's token, claiming another device",
        forge(
            &AccessClaims {
                did: "another-phone".into(),
                ..good.clone()
            },
            Algorithm::HS256,
            key,
        ),
    ));
    for (what, token) in &cases {
        let (status, body) = problem(app.call("get", "/me", Some(token)).await).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body["code"].is_string(), "{what}");
    }
    let (status, body) = problem(app.call("get", "/me", None).await).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (401, "missing-token")
    );
    // The untampered token still works, so the cases above failed for their own reason.
    assert_eq!(app.call("get", "/me", Some(&s.access)).await.status(), 200);

    users::disable(app.state.store.as_ref(), "tech1").unwrap();
    let (status, body) = problem(app.call("get", "/me", Some(&s.access)).await).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (401, "session-revoked")
    );
    assert_eq!(
        app.try_login("tech1", "demo", "d", None).await.status(),
        401
    );
}

#[tokio::test]
async fn access_tokens_are_bound_to_their_device() {
    let app = TestApp::spawn(|_| {}).await;
    let s = app.login("tech2").await;
    let resp = app
        .http
        .get(app.url("/me"))
        .bearer_auth(&s.access)
        .header("x-device-id", "another-phone")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app
        .http
        .get(app.url("/me"))
        .bearer_auth(&s.access)
        .header("x-device-id", &s.device)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(app.refresh(&s.refresh, "another-phone").await.status(), 401);
    // The token was presented by another device: it was taken, so the whole family ends,
    // and the owner's device signs in again.
    let (status, body) = problem(app.refresh(&s.refresh, &s.device).await).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("session-revoked"))
    );
}

#[tokio::test]
async fn refresh_rotates_allows_one_grace_retry_and_revokes_on_reuse() {
    let app = TestApp::spawn(|_| {}).await;
    let s = app.login("tech3").await;
    let first: Value = app
        .refresh(&s.refresh, &s.device)
        .await
        .json()
        .await
        .unwrap();
    let r1 = first["refreshToken"].as_str().unwrap().to_string();
    assert_ne!(r1, s.refresh);
    assert_eq!(first["user"]["resourceId"], "tech3");

    // The response was lost: the previous token within 60 s gets the same pair back.
    let retry: Value = app
        .refresh(&s.refresh, &s.device)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(retry["refreshToken"], first["refreshToken"]);
    assert_eq!(retry["accessToken"], first["accessToken"]);

    let second: Value = app.refresh(&r1, &s.device).await.json().await.unwrap();
    let a2 = second["accessToken"].as_str().unwrap().to_string();
    assert_eq!(app.call("get", "/me", Some(&a2)).await.status(), 200);

    // Two generations back is a stolen token: the whole family dies, access tokens too.
    let (status, body) = problem(app.refresh(&s.refresh, &s.device).await).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (401, "refresh-token-reused")
    );
    assert_eq!(app.call("get", "/me", Some(&a2)).await.status(), 401);
    let r2 = second["refreshToken"].as_str().unwrap();
    assert_eq!(app.refresh(r2, &s.device).await.status(), 401);
    // Only hashes are stored: the plaintext token appears nowhere in the store.
    let raw = app
        .state
        .store
        .scan_raw(fieldsync::auth::refresh::REFRESH_TOKENS, b"", None, 1000)
        .unwrap();
    assert!(raw
        .iter()
        .all(|(k, v)| !k.windows(r2.len()).any(|w| w == r2.as_bytes())
            && !v.windows(r2.len()).any(|w| w == r2.as_bytes())));
}

#[tokio::test]
async fn racing_refreshes_with_one_token_rotate_once() {
    let app = TestApp::spawn(|_| {}).await;
    let s = app.login("tech1").await;
    let (a, b) = tokio::join!(
        app.refresh(&s.refresh, &s.device),
        app.refresh(&s.refresh, &s.device)
    );
    assert_eq!(
        (a.status(), b.status()),
        (reqwest::StatusCode::OK, reqwest::StatusCode::OK)
    );
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(
        a["refreshToken"], b["refreshToken"],
        "one winner: both callers hold the same new pair"
    );
    let family = app
        .state
        .keys
        .verify(a["accessToken"].as_str().unwrap())
        .unwrap()
        .fam;
    let f = fieldsync::auth::refresh::family(app.state.store.as_ref(), &family)
        .unwrap()
        .unwrap();
    assert_eq!(f.generation, 1);
    assert!(f.revoked.is_none());
}

#[tokio::test]
async fn logout_revokes_the_family() {
    let app = TestApp::spawn(|_| {}).await;
    let s = app.login("super1").await;
    assert_eq!(
        app.call("delete", "/sessions", Some(&s.access))
            .await
            .status(),
        204
    );
    assert_eq!(app.call("get", "/me", Some(&s.access)).await.status(), 401);
    assert_eq!(app.refresh(&s.refresh, &s.device).await.status(), 401);
    let other = app.login("super1").await;
    assert_eq!(
        app.call("get", "/me", Some(&other.access)).await.status(),
        200
    );
}

#[tokio::test]
async fn totp_is_required_checked_and_never_accepted_twice() {
    let app = TestApp::spawn(|_| {}).await;
    let uri = users::enroll_totp(app.state.store.as_ref(), "tech2").unwrap();
    let secret = crate::helpers::otpauth_secret(&uri);
    let (status, body) = problem(app.try_login("tech2", "demo", "p", None).await).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (401, "mfa-required")
    );
    let (status, body) = problem(app.try_login("tech2", "demo", "p", Some("000000x")).await).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (401, "invalid-totp")
    );
    let code = totp::code_at(&secret, chrono::Utc::now().timestamp() as u64).unwrap();
    assert_eq!(
        app.try_login("tech2", "demo", "p", Some(&code))
            .await
            .status(),
        201
    );
    let (status, body) = problem(app.try_login("tech2", "demo", "p", Some(&code)).await).await;
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (401, "totp-replayed")
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_user_with_retry_after() {
    let app = TestApp::spawn(|s| s.auth.max_failures_per_user = 3).await;
    for _ in 0..3 {
        assert_eq!(
            app.try_login("tech1", "wrong", "d", None).await.status(),
            401
        );
    }
    let resp = app.try_login("tech1", "demo", "d", None).await;
    assert_eq!(resp.status(), 429, "even the right password waits");
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    let (_, body) = problem(resp).await;
    assert_eq!(body["code"], "too-many-attempts");
    assert_eq!(
        app.try_login("tech2", "demo", "d", None).await.status(),
        201,
        "other users are unaffected"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let app = TestApp::spawn(|s| s.auth.max_failures_per_address = 4).await;
    for user in ["a", "b", "c", "d"] {
        assert_eq!(app.try_login(user, "x", "d", None).await.status(), 401);
    }
    assert_eq!(
        app.try_login("tech3", "demo", "d", None).await.status(),
        429
    );
}

/// Token answers are never cached (`Cache-Control: no-store`), and every answer, a problem
/// or a 404 included, carries `X-Content-Type-Options: nosniff`.
#[tokio::test]
async fn token_answers_are_not_stored_and_no_answer_is_sniffed() {
    let app = TestApp::spawn(|_| {}).await;
    let login = app
        .http
        .post(app.url("/sessions"))
        .json(&json!({"username": "tech1", "password": "demo", "deviceId": "hdr-phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 201);
    assert_eq!(login.headers()["cache-control"], "no-store");
    assert_eq!(login.headers()["x-content-type-options"], "nosniff");
    let body: Value = login.json().await.unwrap();
    let refreshed = app
        .http
        .post(app.url("/sessions/refresh"))
        .json(&json!({"refreshToken": body["refreshToken"], "deviceId": "hdr-phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    for (method, path) in [
        ("get", "/healthz"),
        ("get", "/no/such/path"),
        ("get", "/me"),
    ] {
        let resp = app.call(method, path, None).await;
        assert_eq!(
            resp.headers()["x-content-type-options"],
            "nosniff",
            "{method} {path} ({})",
            resp.status()
        );
    }
}

#[tokio::test]
async fn refresh_attempts_are_throttled_per_device_like_logins() {
    let app = TestApp::spawn(|_| {}).await;
    let s = app.login("tech1").await;
    // Five guesses for this device: each a 401.
    for n in 0..5 {
        let resp = app.refresh(&format!("guess-{n}"), &s.device).await;
        assert_eq!(resp.status(), 401, "guess {n}");
    }
    // Then the device is throttled, even with its real token, and told when to come back.
    let resp = app.refresh(&s.refresh, &s.device).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    let (_, body) = problem(resp).await;
    assert_eq!(body["code"], "too-many-attempts");
    // Another device (another technician's phone, same address) is not.
    let other = app.login("tech2").await;
    assert_eq!(
        app.refresh(&other.refresh, &other.device).await.status(),
        200
    );
}
