//! The product's features beside the core write and read paths: approvals of completed
//! work, the audit trail, van stock and site equipment, photo and signature uploads, and
//! outbound webhooks. Each owns its records; writes to them ride in the write model's
//! journal records.

pub mod approvals;
pub mod audit;
pub mod stock;
pub mod uploads;
pub mod webhooks;
