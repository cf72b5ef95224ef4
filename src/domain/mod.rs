//! Domain rules with no I/O: the device-facing lifecycle and parts consumption.

pub mod lifecycle;
pub mod parts;
