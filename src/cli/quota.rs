//! `btestd quota`: byte budgets of address blocks, the per-address default,
//! anonymous tests and users, and the settings that shape periods.

use super::db::{open_for_read, open_for_write};
use super::exit::{CmdResult, finish};
use super::parse::parse_bytes;
use super::table::{Format, Table};
use crate::quota::{Cidr, Dir, PartialLimits, Period, format_amount};
use crate::store::LimitScope;
use crate::store::config::{LimitRow, SETTING_IPV6_PREFIX, SETTING_RETENTION_DAYS, SETTING_TIMEZONE};
use argh::FromArgs;
use std::path::PathBuf;

/// Manage byte budgets of client addresses and anonymous tests, and quota settings.
#[derive(FromArgs)]
#[argh(subcommand, name = "quota")]
pub struct QuotaArgs {
    #[argh(subcommand)]
    pub cmd: QuotaCmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub enum QuotaCmd {
    Set(QuotaSet),
    List(QuotaList),
    Del(QuotaDel),
    Config(QuotaConfigArgs),
}

/// Set budgets (amounts like 10G or 512MiB; 0 = unlimited) for each address in a block, for addresses without a block (--ip-default), for anonymous tests or for a user.
#[derive(FromArgs)]
#[argh(subcommand, name = "set")]
pub struct QuotaSet {
    /// address or block (192.0.2.7, 10.0.0.0/8, 2001:db8::/48): budget of each address in it
    #[argh(option)]
    pub ip: Option<String>,
    /// budget of each address no --ip block covers
    #[argh(switch)]
    pub ip_default: bool,
    /// the one budget all tests without a user name share
    #[argh(switch)]
    pub anonymous: bool,
    /// a user's budget (same as 'btestd user set')
    #[argh(option)]
    pub user: Option<String>,
    /// daily budget for bytes the server receives
    #[argh(option, from_str_fn(parse_bytes))]
    pub day_rx: Option<u64>,
    /// daily budget for bytes the server transmits
    #[argh(option, from_str_fn(parse_bytes))]
    pub day_tx: Option<u64>,
    /// daily budget for both directions together
    #[argh(option, from_str_fn(parse_bytes))]
    pub day_total: Option<u64>,
    /// weekly (ISO week) budget for bytes the server receives
    #[argh(option, from_str_fn(parse_bytes))]
    pub week_rx: Option<u64>,
    /// weekly budget for bytes the server transmits
    #[argh(option, from_str_fn(parse_bytes))]
    pub week_tx: Option<u64>,
    /// weekly budget for both directions together
    #[argh(option, from_str_fn(parse_bytes))]
    pub week_total: Option<u64>,
    /// monthly budget for bytes the server receives
    #[argh(option, from_str_fn(parse_bytes))]
    pub month_rx: Option<u64>,
    /// monthly budget for bytes the server transmits
    #[argh(option, from_str_fn(parse_bytes))]
    pub month_tx: Option<u64>,
    /// monthly budget for both directions together
    #[argh(option, from_str_fn(parse_bytes))]
    pub month_total: Option<u64>,
    /// database file
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// copy of the database (on flash): restored if missing, saved after a change
    #[argh(option)]
    pub persist: Option<PathBuf>,
}

/// List every budget and the quota settings.
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
pub struct QuotaList {
    /// output: text (default), csv or json
    #[argh(option, default = "String::from(\"text\")")]
    pub format: String,
    /// database file
    #[argh(option)]
    pub db: Option<PathBuf>,
}

/// Remove all budgets of a block, the address default, anonymous tests or a user.
#[derive(FromArgs)]
#[argh(subcommand, name = "del")]
pub struct QuotaDel {
    /// address or block as given to 'quota set --ip'
    #[argh(option)]
    pub ip: Option<String>,
    /// the default per-address budget
    #[argh(switch)]
    pub ip_default: bool,
    /// the anonymous budget
    #[argh(switch)]
    pub anonymous: bool,
    /// a user's budget
    #[argh(option)]
    pub user: Option<String>,
    /// database file
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// copy of the database (on flash): restored if missing, saved after a change
    #[argh(option)]
    pub persist: Option<PathBuf>,
}

/// Show or change quota settings: time zone of periods, IPv6 grouping, retention.
#[derive(FromArgs)]
#[argh(subcommand, name = "config")]
pub struct QuotaConfigArgs {
    /// periods follow the server's local time (default) or utc
    #[argh(option)]
    pub timezone: Option<String>,
    /// IPv6 clients share per-address budgets per this prefix length (default 64; 128 = per address)
    #[argh(option)]
    pub ipv6_prefix: Option<u8>,
    /// days of session records and daily usage to keep (default 90)
    #[argh(option)]
    pub retention_days: Option<u32>,
    /// database file
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// copy of the database (on flash): restored if missing, saved after a change
    #[argh(option)]
    pub persist: Option<PathBuf>,
}

/// The nine budget options of `quota set` and `user set`, day/week/month
/// by rx/tx/total, as the partial limits a change applies.
pub(super) fn limit_cells(cells: [Option<u64>; 9]) -> PartialLimits {
    let mut out = PartialLimits::default();
    let mut it = cells.into_iter();
    for p in Period::ALL {
        for d in Dir::ALL {
            out.set(p, d, it.next().flatten());
        }
    }
    out
}

/// Runs `btestd quota ...`.
pub fn quota(a: QuotaArgs) -> i32 {
    crate::logger::init(log::LevelFilter::Warn, false);
    match a.cmd {
        QuotaCmd::Set(a) => finish("quota set", quota_set(a)),
        QuotaCmd::List(a) => finish("quota list", quota_list(a)),
        QuotaCmd::Del(a) => finish("quota del", quota_del(a)),
        QuotaCmd::Config(a) => finish("quota config", quota_config(a)),
    }
}

fn scope_of(
    ip: &Option<String>,
    ip_default: bool,
    anonymous: bool,
    user: &Option<String>,
) -> Result<LimitScope, String> {
    let given =
        usize::from(ip.is_some()) + usize::from(ip_default) + usize::from(anonymous) + usize::from(user.is_some());
    if given != 1 {
        return Err("give exactly one of --ip ADDR/BITS, --ip-default, --anonymous or --user NAME".into());
    }
    Ok(match (ip, user) {
        (Some(c), _) => LimitScope::Ip(c.parse::<Cidr>()?),
        (_, Some(u)) => LimitScope::User(u.clone()),
        _ if ip_default => LimitScope::IpDefault,
        _ => LimitScope::Anonymous,
    })
}

fn quota_set(a: QuotaSet) -> CmdResult {
    let scope = scope_of(&a.ip, a.ip_default, a.anonymous, &a.user)?;
    let limits = limit_cells([
        a.day_rx,
        a.day_tx,
        a.day_total,
        a.week_rx,
        a.week_tx,
        a.week_total,
        a.month_rx,
        a.month_tx,
        a.month_total,
    ]);
    if limits.is_empty() {
        return Err("give at least one budget, e.g. --day-total 10G or --month-rx 500GiB (0 = unlimited)".into());
    }
    let mut db = open_for_write(&a.db, &a.persist)?;
    let store = &mut db.store;
    store.set_limits(&scope, &limits).map_err(|e| e.to_string())?;
    db.saved()?;
    println!("budgets of {scope} updated");
    Ok(())
}

fn quota_del(a: QuotaDel) -> CmdResult {
    let scope = scope_of(&a.ip, a.ip_default, a.anonymous, &a.user)?;
    let mut db = open_for_write(&a.db, &a.persist)?;
    let store = &mut db.store;
    if !store.del_limits(&scope).map_err(|e| e.to_string())? {
        return Err(format!("{scope} has no budgets set; 'btestd quota list' shows them"));
    }
    db.saved()?;
    println!("budgets of {scope} removed");
    Ok(())
}

fn scope_columns(s: &LimitScope) -> (String, String) {
    match s {
        LimitScope::User(n) => ("user".into(), n.clone()),
        LimitScope::Anonymous => ("anonymous".into(), "-".into()),
        LimitScope::IpDefault => ("ip".into(), "default".into()),
        LimitScope::Ip(c) => ("ip".into(), c.to_string()),
    }
}

fn quota_list(a: QuotaList) -> CmdResult {
    let fmt: Format = a.format.parse()?;
    let store = open_for_read(&a.db)?;
    let rows: Vec<LimitRow> = store.list_limits().map_err(|e| e.to_string())?;
    let cfg = store.load_quota_config().map_err(|e| e.to_string())?;
    let retention = store.retention_days().map_err(|e| e.to_string())?;
    let mut out = Table::new(fmt, "budgets");
    if out.csv {
        out.header(["scope", "subject", "period", "dir", "bytes"].map(String::from).to_vec());
    } else {
        out.header(["SCOPE", "SUBJECT", "PERIOD", "DIR", "BUDGET"].map(String::from).to_vec());
    }
    for r in &rows {
        let (scope, mut subject) = scope_columns(&r.scope);
        if out.csv && r.scope == LimitScope::Anonymous {
            subject.clear();
        }
        let budget = if out.csv {
            r.bytes.to_string()
        } else if r.bytes == 0 {
            "unlimited".into()
        } else {
            format_amount(r.bytes)
        };
        out.row(vec![scope, subject, r.period.to_string(), r.dir.to_string(), budget]);
    }
    out.print()?;
    if fmt == Format::Text {
        if rows.is_empty() {
            println!("(no budgets: everything is unlimited)");
        }
        println!(
            "periods: {} time; IPv6 clients grouped per /{}; records kept {} days",
            if cfg.utc { "UTC" } else { "local" },
            cfg.ipv6_prefix,
            retention
        );
    }
    Ok(())
}

fn quota_config(a: QuotaConfigArgs) -> CmdResult {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(tz) = &a.timezone {
        pairs.push((SETTING_TIMEZONE, tz.clone()));
    }
    if let Some(p) = a.ipv6_prefix {
        pairs.push((SETTING_IPV6_PREFIX, p.to_string()));
    }
    if let Some(d) = a.retention_days {
        pairs.push((SETTING_RETENTION_DAYS, d.to_string()));
    }
    if pairs.is_empty() {
        let store = open_for_read(&a.db)?;
        let cfg = store.load_quota_config().map_err(|e| e.to_string())?;
        let retention = store.retention_days().map_err(|e| e.to_string())?;
        println!("timezone: {}", if cfg.utc { "utc" } else { "local" });
        println!("ipv6-prefix: {}", cfg.ipv6_prefix);
        println!("retention-days: {retention}");
        return Ok(());
    }
    let mut db = open_for_write(&a.db, &a.persist)?;
    let store = &mut db.store;
    store.set_settings(&pairs).map_err(|e| e.to_string())?;
    db.saved()?;
    println!("settings updated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_options_fill_period_rows_in_order() {
        let l = limit_cells([Some(1), None, None, None, Some(5), None, None, None, Some(9)]);
        assert_eq!(l.get(Period::Day, Dir::Rx), Some(1));
        assert_eq!(l.get(Period::Week, Dir::Tx), Some(5));
        assert_eq!(l.get(Period::Month, Dir::Total), Some(9));
        assert_eq!(l.get(Period::Day, Dir::Tx), None);
    }
}
