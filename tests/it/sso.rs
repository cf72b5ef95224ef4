//! Single sign-on against a real OpenID provider (`oidc-provider`): device sign-in with an
//! ID token, the refusals (foreign, expired, forged, tampered), key rotation, provisioning
//! and the group-to-role mapping.

use crate::helpers::Stack;
use crate::idp::{assemble, parts, rogue_rsa_pem, Idp};
use fieldsync::auth::Role;
use fieldsync::config::OidcSettings;
use serde_json::{json, Value};
use std::time::Duration;

fn oidc(idp: &Idp, provision: bool, min_refresh_secs: u64) -> OidcSettings {
    OidcSettings {
        issuer: idp.issuer.clone(),
        client_id: "fieldsync-app".into(),
        resource_claim: Some("ofsc_resource".into()),
        role_map: [
            ("fs-technicians".to_string(), Role::Technician),
            ("fs-supervisors".to_string(), Role::Supervisor),
        ]
        .into_iter()
        .collect(),
        provision,
        leeway_secs: 1,
        jwks_min_refresh_secs: min_refresh_secs,
        ..OidcSettings::default()
    }
}

async fn stack(idp: &Idp, provision: bool, min_refresh_secs: u64) -> Stack {
    let o = oidc(idp, provision, min_refresh_secs);
    Stack::start_with(move |s| {
        s.oidc = Some(o);
        // The refusal tests send more bad tokens than a real device would.
        s.auth.max_failures_per_user = 20;
    })
    .await
}

/// `POST /sessions` with an ID token: (status, body).
async fn sign_in(st: &Stack, token: &str, nonce: Option<&str>) -> (u16, Value) {
    let mut body = json!({"idToken": token, "deviceId": "sso-phone"});
    if let Some(n) = nonce {
        body["nonce"] = json!(n);
    }
    let resp = st
        .app
        .http
        .post(st.app.url("/sessions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn refused(st: &Stack, token: &str, status: u16, code: &str) {
    let (got, body) = sign_in(st, token, None).await;
    assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{body}");
}

fn fetches(st: &Stack) -> u64 {
    st.app.state.oidc.as_ref().unwrap().key_fetches()
}

#[tokio::test]
async fn a_device_signs_in_with_its_id_token_and_the_session_works() {
    let idp = Idp::start("k1").await;
    let st = stack(&idp, false, 30).await;
    let token = idp.id_token("fieldsync-app", "tech1", Some("n-123")).await;

    let (status, wrong) = sign_in(&st, &token, Some("n-999")).await;
    assert_eq!(
        (status, wrong["code"].as_str()),
        (401, Some("id-token-nonce"))
    );

    let (status, body) = sign_in(&st, &token, Some("n-123")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["role"], "technician");
    assert_eq!(body["user"]["resourceId"], "tech1");
    let access = body["accessToken"].as_str().unwrap();
    let me: Value = st
        .app
        .http
        .get(st.app.url("/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "tech1", "{me}");
    let today = st.sim.today_route("tech1").await.0;
    let route = st
        .app
        .http
        .get(st.app.url(&format!("/routes/{today}")))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(route.status(), 200);

    // Signing in to the provider again is not needed while the refresh token lives.
    let refreshed = st
        .app
        .refresh(body["refreshToken"].as_str().unwrap(), "sso-phone")
        .await;
    assert_eq!(refreshed.status(), 200);

    // A password and an ID token together are one sign-in too many.
    let both = st
        .app
        .http
        .post(st.app.url("/sessions"))
        .json(&json!({"idToken": token, "username": "tech1", "password": "demo", "deviceId": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
}

#[tokio::test]
async fn foreign_expired_forged_and_tampered_id_tokens_are_refused() {
    let idp = Idp::start("k1").await;
    let elsewhere = Idp::start("k1").await;
    let st = stack(&idp, false, 30).await;
    let good = idp.id_token("fieldsync-app", "tech1", None).await;
    assert_eq!(sign_in(&st, &good, None).await.0, 201);
    let fetched = fetches(&st);

    let foreign = elsewhere.id_token("fieldsync-app", "tech1", None).await;
    refused(&st, &foreign, 401, "id-token-issuer").await;
    let other_app = idp.id_token("other-app", "tech1", None).await;
    refused(&st, &other_app, 401, "id-token-audience").await;

    let (header, payload, sig) = parts(&good);
    // alg none: no signature at all.
    let none = assemble(&json!({"alg": "none", "typ": "JWT"}), &payload, "");
    refused(&st, &none, 401, "invalid-id-token").await;
    // HS256 confusion: the provider's public key used as an HMAC secret.
    let jwks = idp.jwks().await;
    let public_n = jwks["keys"][0]["n"].as_str().unwrap();
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(
        &hs,
        &payload,
        &jsonwebtoken::EncodingKey::from_secret(public_n.as_bytes()),
    )
    .unwrap();
    refused(&st, &confused, 401, "id-token-algorithm").await;
    // Tampered: another user and group under the original signature.
    let mut forged = payload.clone();
    forged["preferred_username"] = json!("super1");
    forged["groups"] = json!(["fs-supervisors"]);
    refused(
        &st,
        &assemble(&header, &forged, &sig),
        401,
        "invalid-id-token",
    )
    .await;
    refused(&st, "not-a-jwt", 401, "invalid-id-token").await;

    // Signed with a key the provider never published, many times over: refused, and the
    // provider's keys are not fetched again for each (at most once per 30 s here).
    let rogue = jsonwebtoken::EncodingKey::from_rsa_pem(rogue_rsa_pem().as_bytes()).unwrap();
    for i in 0..10 {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some(format!("rogue-{i}"));
        let t = jsonwebtoken::encode(&h, &payload, &rogue).unwrap();
        refused(&st, &t, 401, "id-token-key-unknown").await;
    }
    assert_eq!(
        fetches(&st),
        fetched,
        "unknown kids within the interval fetch nothing"
    );

    // Expired: this account's tokens live 2 s and the leeway is 1 s; times are whole
    // seconds, so the token is surely past both after 5 s.
    let short = idp.id_token("fieldsync-app", "shorty", None).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    refused(&st, &short, 401, "id-token-expired").await;

    // Forged tokens are throttled per address like wrong passwords.
    let mut throttled = false;
    for _ in 0..25 {
        let (status, _) = sign_in(&st, "not-a-jwt", None).await;
        throttled |= status == 429;
    }
    assert!(throttled, "bad ID tokens from one address end in 429");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_and_the_removed_one_stops_working() {
    let mut idp = Idp::start("k1").await;
    let st = stack(&idp, false, 1).await;
    let old = idp.id_token("fieldsync-app", "tech1", None).await;
    assert_eq!(sign_in(&st, &old, None).await.0, 201);
    let before = fetches(&st);

    idp.rotate("k2").await;
    let new = idp.id_token("fieldsync-app", "tech1", None).await;
    assert_eq!(parts(&new).0["kid"], "k2");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = sign_in(&st, &new, None).await;
    assert_eq!(status, 201, "the new kid is fetched: {body}");
    assert_eq!(fetches(&st), before + 1);
    refused(&st, &old, 401, "id-token-key-unknown").await;
}

#[tokio::test]
async fn provisioning_and_the_group_to_role_mapping() {
    let idp = Idp::start("k1").await;
    let off = stack(&idp, false, 30).await;
    let on = stack(&idp, true, 30).await;
    let newtech = idp.id_token("fieldsync-app", "newtech", None).await;
    let nogroup = idp.id_token("fieldsync-app", "nogroup", None).await;

    refused(&off, &newtech, 403, "sso-user-unknown").await;
    refused(&off, &nogroup, 403, "sso-no-role").await;
    refused(&on, &nogroup, 403, "sso-no-role").await;

    let (status, body) = sign_in(&on, &newtech, None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (&body["user"]["role"], &body["user"]["resourceId"]),
        (&json!("technician"), &json!("tech2"))
    );
    // Provisioned users have no password: only the provider signs them in.
    for password in ["", "demo"] {
        let resp = on.app.try_login("newtech", password, "p", None).await;
        assert_eq!(resp.status(), 401);
    }

    let super1 = idp.id_token("fieldsync-app", "super1", None).await;
    let (status, body) = sign_in(&on, &super1, None).await;
    assert_eq!((status, &body["user"]["role"]), (201, &json!("supervisor")));

    // A disabled user is refused even with a valid token.
    fieldsync::auth::users::disable(on.app.state.store.as_ref(), "tech1").unwrap();
    let tech1 = idp.id_token("fieldsync-app", "tech1", None).await;
    refused(&on, &tech1, 403, "user-disabled").await;
}

#[tokio::test]
async fn refreshing_an_sso_session_needs_the_provider_to_vouch_again() {
    let idp = Idp::start("k1").await;
    let mut o = oidc(&idp, false, 30);
    o.recheck_secs = 1;
    let st = Stack::start_with(move |s| s.oidc = Some(o)).await;
    let (id_token, access) = idp.tokens("fieldsync-app", "tech1", None).await;
    let (status, body) = sign_in(&st, &id_token, None).await;
    assert_eq!(status, 201, "{body}");
    let mut refresh_token = body["refreshToken"].as_str().unwrap().to_string();
    let refresh = |token: String, provider: Option<String>| {
        let st = &st;
        async move {
            let mut b = json!({"refreshToken": token, "deviceId": "sso-phone"});
            if let Some(p) = provider {
                b["providerAccessToken"] = json!(p);
            }
            let resp = st
                .app
                .http
                .post(st.app.url("/sessions/refresh"))
                .json(&b)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Within the interval no re-check is due.
    let (status, body) = refresh(refresh_token.clone(), None).await;
    assert_eq!(status, 200, "{body}");
    refresh_token = body["refreshToken"].as_str().unwrap().to_string();

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = refresh(refresh_token.clone(), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("sso-recheck-required"))
    );
    let (status, body) = refresh(refresh_token.clone(), Some(access.clone())).await;
    assert_eq!(status, 200, "the provider vouches: {body}");
    refresh_token = body["refreshToken"].as_str().unwrap().to_string();

    // Another person's access token does not vouch for tech1, and ends the session.
    let (_, someone_else) = idp.tokens("fieldsync-app", "super1", None).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = refresh(refresh_token.clone(), Some(someone_else)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("sso-recheck-failed"))
    );
    let (status, _) = refresh(refresh_token.clone(), Some(access.clone())).await;
    assert_eq!(status, 401, "the session is over");

    // Access removed at the provider: the revoked token no longer vouches.
    let (id_token, access) = idp.tokens("fieldsync-app", "tech1", None).await;
    let (_, body) = sign_in(&st, &id_token, None).await;
    let token = body["refreshToken"].as_str().unwrap().to_string();
    idp.revoke("fieldsync-app", &access).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = refresh(token, Some(access)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("sso-recheck-failed"))
    );
}

/// The provider down: sign-in is a 503 `idp-unavailable` (never a 500 and never a 401 that
/// would blame the device), and the console's SSO pages say so; a callback that did not
/// start in this browser, or names no flow, changes nothing and is refused.
#[tokio::test]
async fn provider_outages_and_foreign_callbacks_are_refused_cleanly() {
    let dead = format!("http://127.0.0.1:{}", crate::helpers::free_port());
    let o = OidcSettings {
        issuer: dead.clone(),
        client_id: "fieldsync-app".into(),
        role_map: [("fs-technicians".to_string(), Role::Technician)]
            .into_iter()
            .collect(),
        timeout_secs: 1,
        ..OidcSettings::default()
    };
    let st = Stack::start_with(move |s| s.oidc = Some(o)).await;
    // A JWT-shaped token naming the configured issuer: it gets as far as the key lookup.
    let token = crate::idp::assemble(
        &json!({"alg": "RS256", "kid": "k1"}),
        &json!({"iss": dead, "aud": "fieldsync-app", "sub": "x",
                "exp": chrono::Utc::now().timestamp() + 60, "iat": chrono::Utc::now().timestamp()}),
        "c2ln",
    );
    let (status, body) = sign_in(&st, &token, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("idp-unavailable")),
        "{body}"
    );
    assert!(
        !body["detail"].as_str().unwrap().contains("127.0.0.1"),
        "no upstream URL leaks"
    );

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = http
        .get(st.app.url("/console/sso/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 503);
    for (query, cookie) in [
        ("state=abc&code=xyz", None),
        ("state=abc&code=xyz", Some("fs_sso_state=other")),
        ("state=abc&code=xyz", Some("fs_sso_state=abc")),
        ("error=access_denied&error_description=no", None),
    ] {
        let mut req = http.get(st.app.url(&format!("/console/sso/callback?{query}")));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403, "{query} with {cookie:?}");
        assert!(
            resp.headers().get("set-cookie").is_none(),
            "no session for {query}"
        );
    }
}
