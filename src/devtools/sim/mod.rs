//! The OFSC simulator: a faithful subset of OFSC's REST API over real HTTP, plus a ledger,
//! fault injection and dispatcher controls under `/__sim` for tests and demos.

mod activities;
mod control;
mod events;
mod faults;
mod http;
mod inventory;
mod model;
mod query;
mod routes;
pub mod rules;
pub mod seed;

pub use faults::FaultConfig;
pub use http::capture::Exchange;
pub use http::{Sim, SimServer};
pub use model::{Call, LedgerEntry, SimError, Tenant};
