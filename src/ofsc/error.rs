//! Connector errors and their retry classification.

use std::time::Duration;

/// What went wrong talking to OFSC.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OfscError {
    /// The request never reached OFSC (connection refused, DNS): safe to resend.
    #[error("could not connect to OFSC: {0}")]
    Connect(String),
    /// The request may have been applied: timeout, reset mid-response, unreadable body.
    #[error("no usable answer from OFSC (the request may have been applied): {0}")]
    Ambiguous(String),
    #[error("OFSC server error {status}: {detail}")]
    Server { status: u16, detail: String },
    #[error("OFSC throttled the request ({status})")]
    Throttled {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("OFSC refused the credentials: {0}")]
    Unauthorized(String),
    /// A business rejection: OFSC understood and refused (400, 403, 404, 409...).
    #[error("OFSC rejected the request ({status} {title}): {detail}")]
    Rejected {
        status: u16,
        title: String,
        detail: String,
    },
    #[error("invalid OFSC configuration: {0}")]
    Config(String),
    /// A list longer than fieldsync reads (a page cap): the same on every try, so not retried.
    #[error("an OFSC list is too long to read in full: {0}")]
    TooLong(String),
    /// fieldsync's own storage failed on the way (not OFSC's answer): retried, never a
    /// rejection of the op.
    #[error("local storage error: {0}")]
    Local(String),
}

/// How the replayer must treat an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Back off and try again; honour `after` when OFSC gave `Retry-After`.
    Retry { after: Option<Duration> },
    /// Fetch a new token and try again.
    RefreshAuth,
    /// Do not resend: record OFSC's detail.
    Reject,
}

impl OfscError {
    pub fn disposition(&self) -> Disposition {
        match self {
            OfscError::Connect(_)
            | OfscError::Ambiguous(_)
            | OfscError::Server { .. }
            | OfscError::Local(_) => Disposition::Retry { after: None },
            OfscError::Throttled { retry_after, .. } => Disposition::Retry {
                after: *retry_after,
            },
            OfscError::Unauthorized(_) => Disposition::RefreshAuth,
            OfscError::Rejected { .. } | OfscError::Config(_) | OfscError::TooLong(_) => {
                Disposition::Reject
            }
        }
    }

    /// True when the request may have taken effect even though no success was seen, so the
    /// caller must read the state back before resending.
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, OfscError::Ambiguous(_) | OfscError::Server { .. })
    }

    /// Whether the next try must first read OFSC back instead of sending again: the request
    /// may have been applied, or fieldsync's own storage failed, which can be after OFSC
    /// applied it (storing OFSC's answer). A resend there would create a job twice.
    pub fn needs_read_back(&self) -> bool {
        self.is_ambiguous() || matches!(self, OfscError::Local(_))
    }

    /// HTTP status OFSC answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            OfscError::Server { status, .. }
            | OfscError::Throttled { status, .. }
            | OfscError::Rejected { status, .. } => Some(*status),
            OfscError::Unauthorized(_) => Some(401),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        let cases = [
            (
                OfscError::Connect("refused".into()),
                Disposition::Retry { after: None },
            ),
            (
                OfscError::Ambiguous("timeout".into()),
                Disposition::Retry { after: None },
            ),
            (
                OfscError::TooLong("more than 100000 items".into()),
                Disposition::Reject,
            ),
            (
                OfscError::Server {
                    status: 502,
                    detail: String::new(),
                },
                Disposition::Retry { after: None },
            ),
            (
                OfscError::Throttled {
                    status: 429,
                    retry_after: Some(Duration::from_secs(2)),
                },
                Disposition::Retry {
                    after: Some(Duration::from_secs(2)),
                },
            ),
            (
                OfscError::Unauthorized("expired".into()),
                Disposition::RefreshAuth,
            ),
            (
                OfscError::Rejected {
                    status: 400,
                    title: "Bad Request".into(),
                    detail: "x".into(),
                },
                Disposition::Reject,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.disposition(), want, "{err}");
        }
    }

    #[test]
    fn only_unseen_outcomes_are_ambiguous() {
        assert!(OfscError::Ambiguous("t".into()).is_ambiguous());
        assert!(!OfscError::Connect("c".into()).is_ambiguous());
        assert!(!OfscError::Throttled {
            status: 429,
            retry_after: None
        }
        .is_ambiguous());
        assert!(!OfscError::Rejected {
            status: 400,
            title: String::new(),
            detail: String::new()
        }
        .is_ambiguous());
    }

    /// fieldsync's own storage failing on the way is retried: before, it was a `Config`
    /// error, which rejected the op for good although OFSC never refused it.
    #[test]
    fn a_local_storage_failure_is_retried_never_a_rejection() {
        let e = OfscError::Local("sled: io error".into());
        assert_eq!(e.disposition(), Disposition::Retry { after: None });
        assert!(!e.is_ambiguous());
        assert_eq!(
            OfscError::Config("x".into()).disposition(),
            Disposition::Reject
        );
    }
}
