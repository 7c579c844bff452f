//! Byte budgets per user, anonymous tests and client address, by calendar
//! day, week and month. Pure logic without I/O: the store loads and saves
//! what this module decides with.

pub mod amount;
pub mod ledger;
pub mod limits;
pub mod period;
pub mod subject;

pub use amount::{AmountError, format_amount, parse_amount};
pub use ledger::{Charge, Exceeded, Ledger, UsageRow};
pub use limits::{Dir, Limits, PartialLimits, QuotaConfig};
pub use period::{Date, Period, PeriodKey, Zone};
pub use subject::{Cidr, DEFAULT_IPV6_PREFIX, IpKey, Subject};
