//! Tests of the offline commands as library calls (the binary's are in tests/it).

use super::data;
use super::users::{manage, UsersCommand};
use crate::auth::Role;
use crate::config::HistorySettings;
use crate::store::SledStore;

fn add(dir: &std::path::Path, username: &str) -> Result<super::Outcome, String> {
    manage(
        dir,
        UsersCommand::Add {
            username: username.into(),
            name: "Dana".into(),
            role: Role::Technician,
            resource: Some("r1".into()),
            oversees: vec![],
            parent: None,
        },
        &|| Ok("a long enough password".into()),
    )
}

#[test]
fn users_added_from_the_shell_are_listed_and_audited_as_the_operator() {
    let dir = tempfile::tempdir().unwrap();
    let added = add(dir.path(), "dana").unwrap();
    assert!(
        added.ok && added.text.starts_with("added dana"),
        "{added:?}"
    );
    let listed = manage(dir.path(), UsersCommand::List, &|| {
        Err("a listing asks for no password".into())
    })
    .unwrap();
    assert!(
        listed.text.contains("dana\tTechnician\tresource=r1"),
        "{listed:?}"
    );
    assert!(!listed.text.contains("argon2"), "no hashes in the listing");
    let store = SledStore::open(dir.path()).unwrap();
    let trail = crate::features::audit::list(&store, 0, 10).unwrap();
    let entry = trail.iter().find(|e| e.action == "user.add").unwrap();
    assert_eq!(entry.object, "dana");
    assert!(entry.user.starts_with("cli:"), "{entry:?}");
}

#[test]
fn a_user_command_without_a_password_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let refused = manage(
        dir.path(),
        UsersCommand::Add {
            username: "dana".into(),
            name: "Dana".into(),
            role: Role::Technician,
            resource: None,
            oversees: vec![],
            parent: None,
        },
        &|| Err("no password on standard input".into()),
    );
    assert_eq!(refused, Err("no password on standard input".to_string()));
    let listed = manage(dir.path(), UsersCommand::List, &|| {
        Err("a listing asks for no password".into())
    })
    .unwrap();
    assert_eq!(listed.text, "");
}

#[test]
fn check_refuses_a_directory_without_data_and_passes_a_fresh_store() {
    let dir = tempfile::tempdir().unwrap();
    let missing = data::check(dir.path()).unwrap_err();
    assert!(missing.contains("no fieldsync data"), "{missing}");
    add(dir.path(), "dana").unwrap();
    let checked = data::check(dir.path()).unwrap();
    assert!(checked.ok && checked.text.ends_with("ok\n"), "{checked:?}");
}

#[test]
fn prune_with_both_retentions_off_keeps_history_without_opening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let keep = HistorySettings {
        retention_days: 0,
        audit_retention_days: 0,
        ..HistorySettings::default()
    };
    let out = data::prune(dir.path(), None, &keep).unwrap();
    assert!(out.ok && out.text.contains("history is kept"), "{out:?}");
    assert!(!dir.path().join("db").exists(), "the store was not opened");
    let now = data::prune(dir.path(), Some(0), &keep).unwrap();
    assert!(
        now.text.starts_with("pruned 0 ops") && now.text.contains("older than 0 days"),
        "{now:?}"
    );
}
