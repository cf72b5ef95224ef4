//! fieldsync: an offline-first backend for field technicians' devices, replaying their writes
//! to Oracle Field Service exactly once and in order. See ARCHITECTURE.md for the map.

pub mod api;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod bulk_load;
pub mod cache;
pub mod config;
pub mod console;
pub mod device_sim;
pub mod directory;
pub mod domain;
pub mod events;
pub mod fetch_budget;
pub mod ids;
pub mod ofsc;
pub mod outbox;
pub mod renders;
pub mod replay;
pub mod sim;
pub mod startup;
pub mod state;
pub mod stock;
pub mod store;
pub mod telemetry;
pub mod uploads;
pub mod view;
pub mod webhooks;
