//! The read model: what devices and supervisors read, kept from OFSC and the journal's
//! projections. The route cache, the directory of resources, the device's view of a route
//! (cached activities plus queued writes), rendered route bodies, and the per-user budget of
//! OFSC reads that cache misses cost.

pub mod cache;
pub mod directory;
pub mod events;
pub mod fetch_budget;
pub mod present;
pub mod query;
pub mod renders;
pub mod view;
