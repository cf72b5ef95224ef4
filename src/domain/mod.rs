//! Domain rules with no I/O: the device-facing lifecycle and the device's view of a route.

pub mod lifecycle;
