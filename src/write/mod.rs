//! The write model: one command per kind of write (status, parts, grant, fixes, create,
//! decision). A command owns what makes a write safe to acknowledge: the route's lane lock,
//! the idempotency check, validation against the device's view (the read model plus the
//! queued ops), and the one journal record (`outbox`, over `store::journal`). `api/` and the
//! console only parse, authorize by role and present; a sync push is a batch of commands
//! sharing one `outbox::Stage`.

mod context;
pub mod create;
pub mod decision;
mod error;
pub mod fixes;
pub mod grant;
pub mod outbox;
pub mod parts;
pub mod push;
pub mod status;

pub use context::{locate, settle, submitter, Located, SyncTime};
pub use error::WriteError;

use crate::auth::Principal;
use crate::state::AppState;
use outbox::{Enqueued, Submitter};

/// A write a device makes, in the form every entry point (an endpoint, a sync op) hands over.
pub enum Command {
    Status(status::StatusCommand),
    Parts(parts::PartsCommand),
    Create(create::NewActivity, Submitter),
    /// A grant, with `base`: where the device reaches this service.
    Grant {
        activity: i64,
        body: grant::GrantBody,
        base: String,
        submitter: Submitter,
    },
    Fixes {
        items: Vec<fixes::FixBody>,
        from_sync: Option<SyncTime>,
        submitter: Submitter,
    },
}

/// Runs one command. The write is in the journal but not yet durable: the caller settles
/// (flushes) once before answering, so a batch pays one flush.
pub async fn submit(state: &AppState, who: &Principal, c: Command) -> Result<Enqueued, WriteError> {
    match c {
        Command::Status(w) => status::submit_status(state, who, w).await,
        Command::Parts(w) => parts::submit_parts(state, who, w).await,
        Command::Create(body, submitter) => {
            create::submit_create(state, who, body, submitter).await
        }
        Command::Grant {
            activity,
            body,
            base,
            submitter,
        } => grant::submit_grant(state, who, &base, activity, body, submitter).await,
        Command::Fixes {
            items,
            from_sync,
            submitter,
        } => fixes::submit_fixes(state, who, items, from_sync, submitter).await,
    }
}
