//! fieldsync: an offline-first backend for field technicians' devices, replaying their writes
//! to Oracle Field Service exactly once and in order. See ARCHITECTURE.md for the map.

pub mod api;
pub mod auth;
pub mod config;
pub mod console;
pub mod devtools;
pub mod domain;
pub mod features;
pub mod ids;
pub mod offline;
pub mod ofsc;
pub mod read;
pub mod replay;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod write;

// The dev tools keep their short paths (`fieldsync::sim`, `fieldsync::device_sim`,
// `fieldsync::bulk_load`).
pub use devtools::{bulk_load, device_sim, sim};
