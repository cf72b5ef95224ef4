//! The OFSC connector: typed wire models, authentication, time conversion and the HTTP client.
//!
//! This is the only module that reaches OFSC over HTTP (ARCHITECTURE.md, invariant 3).

mod client;
mod error;
pub mod time;
pub mod wire;

pub use client::{ActivityQuery, AuthKind, OfscClient, OfscConfig};
pub use error::{Disposition, OfscError};
