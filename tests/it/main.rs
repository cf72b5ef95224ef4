//! Integration tests: real HTTP against the service and the OFSC simulator, both on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod approvals;
mod console;
mod console_http;
mod crash;
mod device_sim;
mod helpers;
mod idp;
mod matrix;
mod ofsc_schema;
mod operate;
mod origin;
mod parts;
mod read_limits;
mod restart;
mod routes;
mod service;
mod sessions;
mod sim_api;
mod sim_faults;
mod sim_lifecycle;
mod slow_clients;
mod spec;
mod sso;
mod status;
mod sync;
mod tidy;
mod upload_crash;
mod uploads;
mod webhooks;
