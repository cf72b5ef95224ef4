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
];

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

fn fill(path: &str, resource: &str) -> String {
    path.replace("{resourceId}", resource)
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
    let mut failures = Vec::new();
    for Row(method, path, role, owner, want) in MATRIX {
        // A fresh session per row: some rows (sign-out) end their session.
        let session = app.login(login_of(*role)).await;
        let url = fill(path, resource_for(*role, *owner));
        let resp = app.call(method, &url, Some(&session.access)).await;
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
        let resp = app.call(method, &fill(path, "tech1"), None).await;
        assert_eq!(resp.status(), 401, "{method} {path}");
    }
}
