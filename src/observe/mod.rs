//! What the server tells about itself: the snapshot `btestd status` prints
//! ([`status`]), in text and JSON, the Prometheus exposition built from the
//! same snapshot ([`metrics`]), and the control channel's requests
//! ([`request`]). Pure: the server fills a [`Status`]; these only render it.

pub mod metrics;
pub mod request;
pub mod status;

pub use request::Request;
pub use status::{LiveTest, Status};
