//! btestd: a MikroTik bandwidth-test server (and client) built around one
//! mio event loop, for router appliances.

pub mod auth;
pub mod cpu;
pub mod proto;
pub mod sysrand;
