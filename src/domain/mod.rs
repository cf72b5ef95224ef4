//! Domain rules with no I/O: the device-facing lifecycle, parts consumption, and the window
//! device times must fall in.

pub mod lifecycle;
pub mod parts;
pub mod times;
