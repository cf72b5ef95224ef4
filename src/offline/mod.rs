//! The operator's offline commands over a data directory, run with the service stopped
//! (sled locks its directory): verify, prune, rewrite, load a backlog, manage users. Each
//! answers the text to print, or why it failed; the binary only parses and prints.

pub mod data;
pub mod users;

/// What a command printed, and whether it succeeded (`check` reports a difference as text
/// and fails).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub text: String,
    pub ok: bool,
}

impl Outcome {
    fn ok(text: String) -> Outcome {
        Outcome { text, ok: true }
    }
}

#[cfg(test)]
mod tests;
