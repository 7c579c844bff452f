//! Authentication schemes of the btest control connection.

pub mod ecsrp5;
