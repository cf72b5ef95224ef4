//! Unit tests for `users`.

use super::*;
use crate::store::SledStore;

#[test]
fn role_rules() {
    let base = NewUser {
        username: "x".into(),
        name: "X".into(),
        role: Role::Technician,
        resource_id: None,
        oversees: vec![],
        oversees_parent: None,
        password: "secret".into(),
    };
    assert!(validate(&base).is_err());
    assert!(validate(&NewUser {
        resource_id: Some("r".into()),
        ..base.clone()
    })
    .is_ok());
    assert!(validate(&NewUser {
        role: Role::Supervisor,
        ..base.clone()
    })
    .is_err());
    assert!(validate(&NewUser {
        role: Role::Supervisor,
        oversees_parent: Some("p".into()),
        ..base.clone()
    })
    .is_ok());
    assert!(validate(&NewUser {
        role: Role::Admin,
        username: "bad name".into(),
        ..base
    })
    .is_err());
}

#[test]
fn seed_is_idempotent_and_disable_bumps_the_epoch() {
    let store = SledStore::temporary().unwrap();
    assert_eq!(seed_demo(&store, "demo").unwrap().len(), 5);
    assert!(seed_demo(&store, "other").unwrap().is_empty());
    let u = get(&store, "TECH1").unwrap().unwrap();
    assert!(password::verify("demo", &u.password_hash));
    let d = disable(&store, "tech1").unwrap();
    assert!(d.disabled && d.epoch == u.epoch + 1);
    assert_eq!(list(&store).unwrap().len(), 5);
}
