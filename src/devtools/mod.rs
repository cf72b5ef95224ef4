//! The development tools that ship in the binary but are not the service: the OFSC
//! simulator (`fieldsync ofsc-sim`, and the embedded tenant when none is configured) and
//! the reference device client (`fieldsync device-sim`), and the bulk loader behind
//! `fieldsync load` (the million-op figures).

pub mod bulk_load;
pub mod device_sim;
pub mod sim;
