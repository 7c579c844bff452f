//! btestd: a MikroTik bandwidth-test server (and client) built around one
//! mio event loop, for router appliances.

pub mod auth;
pub mod cidr;
pub mod cli;
pub mod client;
pub mod cpu;
pub mod decimal;
#[cfg(feature = "web")]
pub mod http;
pub mod json;
pub mod logger;
pub mod memory;
pub mod net;
pub mod observe;
pub mod pacer;
pub mod proto;
pub mod quota;
pub mod server;
pub mod store;
pub mod stream;
pub mod sysrand;
pub mod trace;
pub mod tz;
pub mod udp;
pub mod zerocopy;
