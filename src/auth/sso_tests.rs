//! Unit tests of the claims-to-user mapping and admission.

use super::*;
use crate::store::SledStore;
use serde_json::json;

fn settings() -> OidcSettings {
    OidcSettings {
        issuer: "https://idp.example".into(),
        client_id: "fieldsync-app".into(),
        resource_claim: Some("ofsc_resource".into()),
        role_map: [
            ("fs-techs".to_string(), Role::Technician),
            ("fs-supervisors".to_string(), Role::Supervisor),
            ("fs-admins".to_string(), Role::Admin),
        ]
        .into_iter()
        .collect(),
        ..OidcSettings::default()
    }
}

fn claims(v: Value) -> Claims {
    v.as_object().cloned().unwrap()
}

#[test]
fn maps_user_role_and_resource_from_claims() {
    let id = identity(
        &settings(),
        &claims(
            json!({"preferred_username": "Ana.Torres", "name": "Ana Torres",
                        "groups": ["staff", "fs-techs"], "ofsc_resource": "tech1"}),
        ),
    )
    .unwrap();
    assert_eq!(
        id,
        Identity {
            username: "ana.torres".into(),
            name: "Ana Torres".into(),
            role: Role::Technician,
            resource_id: Some("tech1".into()),
        }
    );
}

#[test]
fn the_most_privileged_mapped_group_wins_and_a_single_string_counts() {
    let s = settings();
    let both = json!({"preferred_username": "sam", "groups": ["fs-techs", "fs-supervisors"]});
    assert_eq!(identity(&s, &claims(both)).unwrap().role, Role::Supervisor);
    let one = json!({"preferred_username": "root", "groups": "fs-admins"});
    assert_eq!(identity(&s, &claims(one)).unwrap().role, Role::Admin);
}

#[test]
fn refuses_unmapped_groups_missing_or_unusable_user_keys() {
    let s = settings();
    let code = |v: Value| match identity(&s, &claims(v)) {
        Err(AuthError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        code(json!({"preferred_username": "x", "groups": ["staff"]})),
        "sso-no-role"
    );
    assert_eq!(code(json!({"preferred_username": "x"})), "sso-no-role");
    assert_eq!(code(json!({"groups": ["fs-techs"]})), "sso-user-invalid");
    assert_eq!(
        code(json!({"preferred_username": "a b/c", "groups": ["fs-techs"]})),
        "sso-user-invalid"
    );
    let by_email = OidcSettings {
        user_claim: "email".into(),
        ..settings()
    };
    assert!(matches!(
        identity(
            &by_email,
            &claims(json!({"email": "a@x.io", "email_verified": false, "groups": ["fs-techs"]}))
        ),
        Err(AuthError::Refused {
            code: "sso-user-invalid",
            ..
        })
    ));
}

fn store() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    (dir, store)
}

fn tech(name: &str, resource: Option<&str>) -> Identity {
    Identity {
        username: name.into(),
        name: name.into(),
        role: Role::Technician,
        resource_id: resource.map(str::to_string),
    }
}

#[test]
fn provisioning_creates_a_passwordless_user_only_when_on() {
    let (_d, store) = store();
    let off = settings();
    assert!(matches!(
        admit(&store, &off, &tech("newbie", Some("tech9"))),
        Err(AuthError::Refused {
            code: "sso-user-unknown",
            ..
        })
    ));
    assert!(users::get(&store, "newbie").unwrap().is_none());
    let on = OidcSettings {
        provision: true,
        ..settings()
    };
    let u = admit(&store, &on, &tech("newbie", Some("tech9"))).unwrap();
    assert_eq!(u.resource_id.as_deref(), Some("tech9"));
    assert!(u.password_hash.is_empty());
    assert!(matches!(
        admit(&store, &on, &tech("noresource", None)),
        Err(AuthError::Refused {
            code: "sso-no-resource",
            ..
        })
    ));
    // Signing in again finds the same record.
    let again = admit(&store, &on, &tech("newbie", Some("tech9"))).unwrap();
    assert_eq!(again.id, u.id);
}

#[test]
fn a_known_user_takes_the_providers_role_and_a_disabled_one_is_refused() {
    let (_d, store) = store();
    users::seed_demo(&store, "demo").unwrap();
    let promoted = Identity {
        role: Role::Supervisor,
        ..tech("tech1", None)
    };
    let u = admit(&store, &settings(), &promoted).unwrap();
    assert_eq!(u.role, Role::Supervisor);
    assert_eq!(
        u.resource_id.as_deref(),
        Some("tech1"),
        "the record's resource stays"
    );
    assert_eq!(
        users::get(&store, "tech1").unwrap().unwrap().role,
        Role::Supervisor
    );
    users::disable(&store, "tech2").unwrap();
    assert!(matches!(
        admit(&store, &settings(), &tech("tech2", None)),
        Err(AuthError::Refused {
            code: "user-disabled",
            ..
        })
    ));
}
