//! The authorization matrix: role × endpoint × owner, as data, driving one test. Every route
//! that is not public must have rows for every role, so an unprotected route fails the build.

use crate::helpers::TestApp;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Role {
    Tech,
    Super,
    Admin,
}

/// Whose object the path names.
#[derive(Debug, Clone, Copy)]
enum Owner {
    /// The path names no object.
    NoObject,
    Own,
    OtherTech,
    Supervised,
    NotSupervised,
}

struct Row(&'static str, &'static str, Role, Owner, u16);

use Owner::*;
use Role::*;

const MATRIX: &[Row] = &[
    Row("get", "/me", Tech, NoObject, 200),
    Row("get", "/me", Super, NoObject, 200),
    Row("get", "/me", Admin, NoObject, 200),
    Row("delete", "/sessions", Tech, NoObject, 204),
    Row("delete", "/sessions", Super, NoObject, 204),
    Row("delete", "/sessions", Admin, NoObject, 204),
    Row("get", "/resources/{resourceId}", Tech, Own, 200),
    Row("get", "/resources/{resourceId}", Tech, OtherTech, 404),
    Row("get", "/resources/{resourceId}", Tech, NotSupervised, 404),
    Row("get", "/resources/{resourceId}", Super, Own, 200),
    Row("get", "/resources/{resourceId}", Super, Supervised, 200),
    Row("get", "/resources/{resourceId}", Super, NotSupervised, 404),
    Row("get", "/resources/{resourceId}", Admin, Supervised, 200),
    Row("get", "/resources/{resourceId}", Admin, NotSupervised, 200),
    Row("get", "/admin/users", Tech, NoObject, 403),
    Row("get", "/admin/users", Super, NoObject, 403),
    Row("get", "/admin/users", Admin, NoObject, 200),
    Row("get", "/routes/{date}", Tech, Own, 200),
    Row("get", "/routes/{date}", Tech, OtherTech, 404),
    Row("get", "/routes/{date}", Tech, NotSupervised, 404),
    Row("get", "/routes/{date}", Super, Own, 200),
    Row("get", "/routes/{date}", Super, Supervised, 200),
    Row("get", "/routes/{date}", Super, NotSupervised, 404),
    Row("get", "/routes/{date}", Admin, Supervised, 200),
    Row("get", "/routes/{date}", Admin, NotSupervised, 200),
    Row("get", "/activities/{activityId}", Tech, Own, 200),
    Row("get", "/activities/{activityId}", Tech, OtherTech, 404),
    Row("get", "/activities/{activityId}", Super, Supervised, 200),
    Row("get", "/activities/{activityId}", Super, NotSupervised, 404),
    Row("get", "/activities/{activityId}", Admin, NotSupervised, 200),
    Row("patch", "/activities/{activityId}/status", Tech, Own, 202),
    Row(
        "patch",
        "/activities/{activityId}/status",
        Tech,
        OtherTech,
        404,
    ),
    Row(
        "patch",
        "/activities/{activityId}/status",
        Super,
        Supervised,
        202,
    ),
    Row(
        "patch",
        "/activities/{activityId}/status",
        Super,
        NotSupervised,
        404,
    ),
    Row(
        "patch",
        "/activities/{activityId}/status",
        Admin,
        Supervised,
        403,
    ),
    // The status rows above started the first stop, so a parts entry is accepted.
    Row("get", "/activities/{activityId}/parts", Tech, Own, 200),
    Row(
        "get",
        "/activities/{activityId}/parts",
        Tech,
        OtherTech,
        404,
    ),
    Row(
        "get",
        "/activities/{activityId}/parts",
        Super,
        Supervised,
        200,
    ),
    Row(
        "get",
        "/activities/{activityId}/parts",
        Super,
        NotSupervised,
        404,
    ),
    Row(
        "get",
        "/activities/{activityId}/parts",
        Admin,
        NotSupervised,
        200,
    ),
    Row("post", "/activities/{activityId}/parts", Tech, Own, 202),
    Row(
        "post",
        "/activities/{activityId}/parts",
        Tech,
        OtherTech,
        404,
    ),
    Row(
        "post",
        "/activities/{activityId}/parts",
        Super,
        Supervised,
        202,
    ),
    Row(
        "post",
        "/activities/{activityId}/parts",
        Super,
        NotSupervised,
        404,
    ),
    Row(
        "post",
        "/activities/{activityId}/parts",
        Admin,
        Supervised,
        403,
    ),
    Row("get", "/inventory", Tech, Own, 200),
    Row("get", "/inventory", Tech, OtherTech, 404),
    Row("get", "/inventory", Super, Supervised, 200),
    Row("get", "/inventory", Super, NotSupervised, 404),
    Row("get", "/inventory", Admin, NotSupervised, 200),
    Row(
        "post",
        "/activities/{activityId}/attachments",
        Tech,
        Own,
        201,
    ),
    Row(
        "post",
        "/activities/{activityId}/attachments",
        Tech,
        OtherTech,
        404,
    ),
    Row(
        "post",
        "/activities/{activityId}/attachments",
        Super,
        Supervised,
        201,
    ),
    Row(
        "post",
        "/activities/{activityId}/attachments",
        Super,
        NotSupervised,
        404,
    ),
    Row(
        "post",
        "/activities/{activityId}/attachments",
        Admin,
        Supervised,
        403,
    ),
    Row(
        "get",
        "/activities/{activityId}/attachments",
        Tech,
        Own,
        200,
    ),
    Row(
        "get",
        "/activities/{activityId}/attachments",
        Tech,
        OtherTech,
        404,
    ),
    Row(
        "get",
        "/activities/{activityId}/attachments",
        Super,
        Supervised,
        200,
    ),
    Row(
        "get",
        "/activities/{activityId}/attachments",
        Super,
        NotSupervised,
        404,
    ),
    Row(
        "get",
        "/activities/{activityId}/attachments",
        Admin,
        NotSupervised,
        200,
    ),
    Row(
        "get",
        "/attachments/{attachmentId}/thumbnail",
        Tech,
        Own,
        200,
    ),
    Row(
        "get",
        "/attachments/{attachmentId}/thumbnail",
        Tech,
        OtherTech,
        404,
    ),
    Row(
        "get",
        "/attachments/{attachmentId}/thumbnail",
        Super,
        Supervised,
        200,
    ),
    Row(
        "get",
        "/attachments/{attachmentId}/thumbnail",
        Super,
        NotSupervised,
        404,
    ),
    Row(
        "get",
        "/attachments/{attachmentId}/thumbnail",
        Admin,
        NotSupervised,
        200,
    ),
    Row("get", "/attachments/{attachmentId}/content", Tech, Own, 200),
    Row(
        "get",
        "/attachments/{attachmentId}/content",
        Tech,
        OtherTech,
        404,
    ),
    Row(
        "get",
        "/attachments/{attachmentId}/content",
        Super,
        Supervised,
        200,
    ),
    Row(
        "get",
        "/attachments/{attachmentId}/content",
        Super,
        NotSupervised,
        404,
    ),
    Row(
        "get",
        "/attachments/{attachmentId}/content",
        Admin,
        NotSupervised,
        200,
    ),
    Row("post", "/locations", Tech, NoObject, 202),
    Row("post", "/locations", Super, NoObject, 202),
    Row("post", "/locations", Admin, NoObject, 403),
    Row("get", "/approvals", Tech, NoObject, 403),
    Row("get", "/approvals", Super, NoObject, 200),
    Row("get", "/approvals", Admin, NoObject, 200),
    Row("get", "/approvals/{approvalId}", Tech, Own, 403),
    Row("get", "/approvals/{approvalId}", Super, Supervised, 200),
    Row("get", "/approvals/{approvalId}", Super, NotSupervised, 404),
    Row("get", "/approvals/{approvalId}", Admin, NotSupervised, 200),
    Row("post", "/approvals/{approvalId}/decision", Tech, Own, 403),
    Row(
        "post",
        "/approvals/{approvalId}/decision",
        Super,
        NotSupervised,
        404,
    ),
    Row(
        "post",
        "/approvals/{approvalId}/decision",
        Super,
        Supervised,
        202,
    ),
    Row(
        "post",
        "/approvals/{approvalId}/decision",
        Admin,
        NotSupervised,
        202,
    ),
    Row("get", "/admin/webhooks/deliveries", Tech, NoObject, 403),
    Row("get", "/admin/webhooks/deliveries", Super, NoObject, 403),
    Row("get", "/admin/webhooks/deliveries", Admin, NoObject, 200),
    Row(
        "post",
        "/admin/webhooks/deliveries/{deliveryId}/redeliver",
        Tech,
        NoObject,
        403,
    ),
    Row(
        "post",
        "/admin/webhooks/deliveries/{deliveryId}/redeliver",
        Super,
        NoObject,
        403,
    ),
    Row(
        "post",
        "/admin/webhooks/deliveries/{deliveryId}/redeliver",
        Admin,
        NoObject,
        404,
    ),
    Row("get", "/audit", Tech, NoObject, 403),
    Row("get", "/audit", Super, NoObject, 200),
    Row("get", "/audit", Admin, NoObject, 200),
    Row("get", "/ops/{opId}", Tech, Own, 200),
    Row("get", "/ops/{opId}", Tech, OtherTech, 404),
    Row("get", "/ops/{opId}", Super, Supervised, 200),
    Row("get", "/ops/{opId}", Super, NotSupervised, 404),
    Row("get", "/ops/{opId}", Admin, NotSupervised, 200),
    Row("get", "/activities", Tech, Own, 200),
    Row("get", "/activities", Tech, OtherTech, 404),
    Row("get", "/activities", Super, Supervised, 200),
    Row("get", "/activities", Super, NotSupervised, 404),
    Row("get", "/activities", Admin, NotSupervised, 200),
    Row("post", "/activities", Tech, Own, 202),
    Row("post", "/activities", Tech, OtherTech, 404),
    Row("post", "/activities", Super, Supervised, 202),
    Row("post", "/activities", Super, NotSupervised, 404),
    Row("post", "/activities", Admin, Supervised, 403),
    Row("post", "/sync/push", Tech, NoObject, 200),
    Row("post", "/sync/push", Super, NoObject, 200),
    Row("post", "/sync/push", Admin, NoObject, 403),
    Row("get", "/sync/pull", Tech, NoObject, 200),
    Row("get", "/sync/pull", Super, NoObject, 200),
    Row("get", "/sync/pull", Admin, NoObject, 403),
    Row("get", "/admin/queue", Tech, NoObject, 403),
    Row("get", "/admin/queue", Super, NoObject, 200),
    Row("get", "/admin/queue", Admin, NoObject, 200),
    Row("get", "/admin/ops", Tech, NoObject, 403),
    Row("get", "/admin/ops", Super, NoObject, 200),
    Row("get", "/admin/ops", Admin, NoObject, 200),
    Row("get", "/admin/quarantine", Tech, NoObject, 403),
    // A corrupt record cannot be attributed to a resource: admins only.
    Row("get", "/admin/quarantine", Super, NoObject, 403),
    Row("get", "/admin/quarantine", Admin, NoObject, 200),
    // The setup ops are applied: retry and discard are refused with 409 once access is granted.
    Row("post", "/admin/ops/{opId}/retry", Tech, Own, 403),
    Row("post", "/admin/ops/{opId}/retry", Super, Supervised, 409),
    Row("post", "/admin/ops/{opId}/retry", Super, NotSupervised, 404),
    Row("post", "/admin/ops/{opId}/retry", Admin, NotSupervised, 409),
    Row("post", "/admin/ops/{opId}/discard", Tech, Own, 403),
    Row("post", "/admin/ops/{opId}/discard", Super, Supervised, 409),
    Row(
        "post",
        "/admin/ops/{opId}/discard",
        Super,
        NotSupervised,
        404,
    ),
    Row("post", "/admin/ops/{opId}/discard", Admin, Supervised, 409),
];

/// A photo uploaded by `who` on `activity`; its attachment id.
async fn uploaded_photo(app: &TestApp, who: &crate::helpers::Session, activity: i64) -> String {
    let photo = fieldsync::features::uploads::samples::photo(64, 48, 1, None);
    let resp: serde_json::Value = app
        .http
        .post(app.url(&format!("/activities/{activity}/attachments")))
        .bearer_auth(&who.access)
        .header("Idempotency-Key", "matrix-photo")
        .json(
            &serde_json::json!({"kind": "photo", "contentType": "image/jpeg", "size": photo.len(),
            "sha256": crate::uploads::sha_hex(&photo), "capturedAt": "2026-11-28T08:00:00Z"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = resp["upload"]["url"].as_str().unwrap();
    let done = crate::uploads::upload_all(&app.http, url, &photo).await;
    assert_eq!(done.status(), 201, "matrix photo upload");
    let att = resp["attachmentId"].as_str().unwrap().to_string();
    let item =
        crate::uploads::processed(&app.http, &app.url(""), &who.access, activity, &att).await;
    assert_eq!(item["state"], "complete", "matrix photo upload");
    att
}

/// The objects of one resource that rows point at.
#[derive(Debug, Clone)]
struct Objects {
    date: String,
    first_activity: i64,
    op: String,
    approval: String,
    attachment: String,
}

/// Finds each resource's route and makes one op per field resource, as its own technician.
async fn objects(app: &TestApp) -> HashMap<&'static str, Objects> {
    let store = app.state.store.as_ref();
    fieldsync::auth::users::add(
        store,
        fieldsync::auth::users::NewUser {
            username: "tech4".into(),
            name: "Dev Patel".into(),
            role: fieldsync::auth::Role::Technician,
            resource_id: Some("tech4".into()),
            oversees: vec![],
            oversees_parent: None,
            password: "demo".into(),
        },
    )
    .unwrap();
    let admin = app.login("admin").await;
    let mut out = HashMap::new();
    for r in ["tech1", "tech2", "tech4", "super1"] {
        let res: serde_json::Value = app
            .call("get", &format!("/resources/{r}"), Some(&admin.access))
            .await
            .json()
            .await
            .unwrap();
        let tz: chrono_tz::Tz = res["timeZone"].as_str().unwrap().parse().unwrap();
        let date = chrono::Utc::now()
            .with_timezone(&tz)
            .date_naive()
            .to_string();
        let route: serde_json::Value = app
            .call(
                "get",
                &format!("/routes/{date}?resourceId={r}"),
                Some(&admin.access),
            )
            .await
            .json()
            .await
            .unwrap();
        let stops = route["stops"].as_array().unwrap().clone();
        let (first_activity, op, approval, attachment) = match (stops.first(), stops.last()) {
            (Some(first), Some(last)) => {
                let who = app.login(r).await;
                let last_id = last["activityId"].as_i64().unwrap();
                let resp = app
                    .http
                    .patch(app.url(&format!("/activities/{last_id}/status")))
                    .bearer_auth(&who.access)
                    .header("Idempotency-Key", "matrix-setup")
                    .json(&serde_json::json!({"status": "cancelled"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 202, "setup op for {r}");
                let body: serde_json::Value = resp.json().await.unwrap();
                // A completed stop opens an approval.
                let worked = stops[stops.len() - 2]["activityId"].as_i64().unwrap();
                for status in ["started", "completed"] {
                    let resp = app
                        .http
                        .patch(app.url(&format!("/activities/{worked}/status")))
                        .bearer_auth(&who.access)
                        .header("Idempotency-Key", format!("matrix-setup-{status}"))
                        .json(&serde_json::json!({ "status": status }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 202, "setup {status} for {r}");
                }
                let (found, _) = fieldsync::features::approvals::list(
                    app.state.store.as_ref(),
                    0,
                    10,
                    &|a| a.activity_id == worked,
                    None,
                )
                .unwrap();
                (
                    first["activityId"].as_i64().unwrap(),
                    body["opId"].as_str().unwrap().to_string(),
                    found[0].id.clone(),
                    uploaded_photo(app, &who, worked).await,
                )
            }
            _ => (
                0,
                "op_0000000000000000".to_string(),
                "apr_0000000000000000".to_string(),
                "att_0000000000000000".to_string(),
            ),
        };
        out.insert(
            r,
            Objects {
                date,
                first_activity,
                op,
                approval,
                attachment,
            },
        );
    }
    out
}

fn login_of(role: Role) -> &'static str {
    match role {
        Tech => "tech1",
        Super => "super1",
        Admin => "admin",
    }
}

/// The resource an owner kind stands for, from the caller's point of view.
fn resource_for(role: Role, owner: Owner) -> &'static str {
    match (role, owner) {
        (Tech, Own) => "tech1",
        (Super, Own) => "super1",
        (_, OtherTech | Supervised) => "tech2",
        (_, NotSupervised) => "tech4",
        (Admin, Own) | (_, NoObject) => "tech1",
    }
}

fn fill(path: &str, resource: &str, objects: &HashMap<&'static str, Objects>) -> String {
    let path = path.replace("{deliveryId}", "dlv_00000000000000ff");
    let Some(o) = objects.get(resource) else {
        return path.replace("{resourceId}", resource);
    };
    let url = path
        .replace("{resourceId}", resource)
        .replace("{date}", &o.date)
        .replace("{activityId}", &o.first_activity.to_string())
        .replace("{opId}", &o.op)
        .replace("{approvalId}", &o.approval)
        .replace("{attachmentId}", &o.attachment);
    if path.starts_with("/routes/") || path == "/inventory" {
        format!("{url}?resourceId={resource}")
    } else if path == "/activities" {
        format!(
            "{url}?resourceId={resource}&dateFrom={}&dateTo={}",
            o.date, o.date
        )
    } else {
        url
    }
}

#[tokio::test]
async fn every_protected_route_has_rows_for_every_role() {
    let public: BTreeSet<_> = fieldsync::api::PUBLIC.iter().collect();
    let mut covered: HashMap<(&str, &str), BTreeSet<Role>> = HashMap::new();
    for Row(m, p, role, _, _) in MATRIX {
        covered.entry((*m, *p)).or_default().insert(*role);
    }
    for route in fieldsync::api::ROUTES
        .iter()
        .filter(|r| !public.contains(r))
    {
        let roles = covered
            .get(&(route.0, route.1))
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            roles.len(),
            3,
            "{} {} lacks matrix rows for some role: has {roles:?}",
            route.0,
            route.1
        );
    }
}

#[tokio::test]
async fn the_matrix_holds() {
    let app = TestApp::spawn(|_| {}).await;
    let objects = objects(&app).await;
    let mut failures = Vec::new();
    for (n, Row(method, path, role, owner, want)) in MATRIX.iter().enumerate() {
        // A fresh session per row: some rows (sign-out) end their session.
        let session = app.login(login_of(*role)).await;
        let url = fill(path, resource_for(*role, *owner), &objects);
        let resource = resource_for(*role, *owner);
        let resp = if *path == "/sync/push" {
            app.http
                .post(app.url(path))
                .bearer_auth(&session.access)
                .json(&serde_json::json!({"deviceId": session.device, "deviceTime": chrono::Utc::now().to_rfc3339(), "ops": []}))
                .send()
                .await
                .unwrap()
        } else if *method == "post" && *path == "/activities" {
            let date = objects
                .get(resource)
                .map(|o| o.date.clone())
                .unwrap_or_default();
            app.http
                .post(app.url("/activities"))
                .bearer_auth(&session.access)
                .header("Idempotency-Key", format!("matrix-{n}"))
                .json(&serde_json::json!({"activityType": "REPAIR", "date": date, "resourceId": resource}))
                .send()
                .await
                .unwrap()
        } else if *method == "post" && *path == "/locations" {
            app.http
                .post(app.url(path))
                .bearer_auth(&session.access)
                .header("Idempotency-Key", format!("matrix-{n}"))
                .json(&serde_json::json!({"items": [{"lat": 40.7, "lng": -74.0}]}))
                .send()
                .await
                .unwrap()
        } else if *method == "post" && path.ends_with("/attachments") {
            app.http
                .post(app.url(&url))
                .bearer_auth(&session.access)
                .header("Idempotency-Key", format!("matrix-{n}"))
                .json(
                    &serde_json::json!({"kind": "photo", "contentType": "image/jpeg", "size": 10,
                    "sha256": "0".repeat(64), "capturedAt": "2026-11-28T08:00:00Z"}),
                )
                .send()
                .await
                .unwrap()
        } else if *method == "post" && path.ends_with("/decision") {
            app.http
                .post(app.url(&url))
                .bearer_auth(&session.access)
                .header("Idempotency-Key", format!("matrix-{n}"))
                .json(&serde_json::json!({"decision": "approve", "comment": "ok"}))
                .send()
                .await
                .unwrap()
        } else if *method == "post" && path.ends_with("/parts") {
            app.http
                .post(app.url(&url))
                .bearer_auth(&session.access)
                .header("Idempotency-Key", format!("matrix-{n}"))
                .json(&serde_json::json!({"items": [{"action": "consume", "inventoryType": "CAT6_M", "quantity": 1}]}))
                .send()
                .await
                .unwrap()
        } else if *method == "patch" {
            app.http
                .patch(app.url(&url))
                .bearer_auth(&session.access)
                .header("Idempotency-Key", format!("matrix-{n}"))
                .json(&serde_json::json!({"status": "started"}))
                .send()
                .await
                .unwrap()
        } else {
            app.call(method, &url, Some(&session.access)).await
        };
        let got = resp.status().as_u16();
        if got >= 400 {
            assert_eq!(
                resp.headers()["content-type"],
                "application/problem+json",
                "{method} {url}"
            );
        }
        if got != *want {
            failures.push(format!(
                "{role:?} {method} {url} ({owner:?}): want {want}, got {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn anonymous_callers_get_401_on_every_protected_route() {
    let app = TestApp::spawn(|_| {}).await;
    let public: BTreeSet<_> = fieldsync::api::PUBLIC.iter().collect();
    for (method, path) in fieldsync::api::ROUTES
        .iter()
        .filter(|r| !public.contains(r))
    {
        let url = fill(path, "tech1", &HashMap::new())
            .replace("{date}", "2026-01-01")
            .replace("{activityId}", "1")
            .replace("{opId}", "op_01");
        let resp = app.call(method, &url, None).await;
        assert_eq!(resp.status(), 401, "{method} {path}");
    }
}
