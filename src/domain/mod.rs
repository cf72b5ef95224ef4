//! Domain rules with no I/O: the device-facing lifecycle, parts consumption, the window
//! device times must fall in, and distances between coordinates.

pub mod geo;
pub mod lifecycle;
pub mod parts;
pub mod times;
