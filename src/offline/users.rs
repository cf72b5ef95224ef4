//! `fieldsync users`: adding, listing and disabling users, passwords and TOTP, from the
//! server's shell; every change is in the audit trail as the operator's.

use super::Outcome;
use crate::auth::{users, Role};
use crate::store::SledStore;
use clap::Subcommand;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Add a user. The password is read from the first line of standard input.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        name: String,
        /// technician, supervisor or admin
        #[arg(long)]
        role: Role,
        /// The technician's OFSC resource id (a supervisor's own, if they do field work).
        #[arg(long)]
        resource: Option<String>,
        /// Resources a supervisor oversees, comma separated.
        #[arg(long, value_delimiter = ',')]
        oversees: Vec<String>,
        /// A parent resource whose descendants a supervisor oversees.
        #[arg(long)]
        parent: Option<String>,
    },
    /// List users (no hashes or secrets).
    List,
    /// Disable a user and revoke all their sessions.
    Disable { username: String },
    /// Set a new password (read from standard input); revokes existing sessions.
    SetPassword { username: String },
    /// Enroll TOTP and print the otpauth:// URI for an authenticator app.
    EnrollTotp { username: String },
}

/// Who acts through `fieldsync users`: an operator at the server's shell, for the audit trail.
fn operator() -> crate::auth::Principal {
    let login = std::env::var("USER").unwrap_or_else(|_| "operator".into());
    crate::auth::Principal {
        user_id: format!("cli:{login}"),
        username: format!("cli:{login}"),
        name: login,
        role: crate::auth::Role::Admin,
        resource_id: None,
        oversees: vec![],
        oversees_parent: None,
        device_id: "command-line".into(),
        family: String::new(),
        request_id: uuid::Uuid::now_v7().to_string(),
        client_request_id: None,
    }
}

/// Records an administrative change made from the command line.
fn audit_cli(s: &dyn crate::store::Storage, action: &str, username: &str) -> Result<(), String> {
    let who = operator();
    crate::features::audit::record(
        s,
        &who,
        crate::features::audit::Event {
            action,
            object: username.to_string(),
            resource_id: None,
            activity_id: None,
            request_id: who.request_id.clone(),
            detail: serde_json::Value::Null,
        },
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Runs one `fieldsync users` action; passwords come from `password` (the binary reads
/// standard input). Answers what to print.
pub fn manage(
    dir: &Path,
    action: UsersCommand,
    password: &dyn Fn() -> Result<String, String>,
) -> Result<Outcome, String> {
    let store = SledStore::open(dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    let s: &dyn crate::store::Storage = &store;
    let mut text = String::new();
    match action {
        UsersCommand::Add {
            username,
            name,
            role,
            resource,
            oversees,
            parent,
        } => {
            let password = password()?;
            let u = users::add(
                s,
                users::NewUser {
                    username,
                    name,
                    role,
                    resource_id: resource,
                    oversees,
                    oversees_parent: parent,
                    password,
                },
            )
            .map_err(|e| e.to_string())?;
            audit_cli(s, "user.add", &u.username)?;
            let _ = writeln!(text, "added {} ({:?}, id {})", u.username, u.role, u.id);
        }
        UsersCommand::List => {
            for u in users::list(s).map_err(|e| e.to_string())? {
                let _ = writeln!(
                    text,
                    "{}\t{:?}\tresource={}\toversees={}{}\t{}{}",
                    u.username,
                    u.role,
                    u.resource_id.as_deref().unwrap_or("-"),
                    u.oversees.join(","),
                    u.oversees_parent
                        .map(|p| format!(" parent={p}"))
                        .unwrap_or_default(),
                    if u.disabled { "disabled" } else { "active" },
                    if u.totp_secret.is_some() { " totp" } else { "" },
                );
            }
        }
        UsersCommand::Disable { username } => {
            users::disable(s, &username).map_err(|e| e.to_string())?;
            audit_cli(s, "user.disable", &username)?;
            let _ = writeln!(text, "disabled {username}; their sessions are revoked");
        }
        UsersCommand::SetPassword { username } => {
            let password = password()?;
            users::set_password(s, &username, &password).map_err(|e| e.to_string())?;
            audit_cli(s, "user.set-password", &username)?;
            let _ = writeln!(
                text,
                "password set for {username}; their sessions are revoked"
            );
        }
        UsersCommand::EnrollTotp { username } => {
            let uri = users::enroll_totp(s, &username).map_err(|e| e.to_string())?;
            audit_cli(s, "user.enroll-totp", &username)?;
            let _ = writeln!(text, "{uri}");
        }
    }
    crate::store::Storage::flush_blocking(&store).map_err(|e| e.to_string())?;
    Ok(Outcome::ok(text))
}
