//! Background stage, dispatch: relays stored deliveries to their targets.
//!
//! [`worker`] claims, sends and records; [`retry`] is the pure policy deciding what a failed
//! attempt becomes (retry when, or dead-letter why).

pub mod retry;
pub mod worker;

pub use worker::Dispatcher;
