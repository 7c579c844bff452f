//! `btestd usage`: the current day, week and month counters with what is
//! left of the tightest budget, or with `--sessions` the recent test records.

use super::db::open_for_read;
use super::exit::{CmdResult, finish};
use super::table::{Format, Table, iso_time, local_time};
use crate::quota::{Date, Dir, IpKey, Limits, Period, PeriodKey, QuotaConfig, Subject, format_amount};
use crate::store::usage::{MERGED_REASON, UsageFilter};
use crate::store::{Store, StoreError};
use argh::FromArgs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

/// Show usage of the current day, week and month, with budgets left; or recent tests (--sessions).
#[derive(FromArgs)]
#[argh(subcommand, name = "usage")]
pub struct UsageArgs {
    /// only this user
    #[argh(option)]
    pub user: Option<String>,
    /// only this client address (IPv6: its group)
    #[argh(option)]
    pub ip: Option<IpAddr>,
    /// only tests without a user name
    #[argh(switch)]
    pub anonymous: bool,
    /// only this period: day, week or month (default all three)
    #[argh(option)]
    pub period: Option<Period>,
    /// list recent test records instead of counters
    #[argh(switch)]
    pub sessions: bool,
    /// how many records --sessions lists (default 20)
    #[argh(option, default = "20")]
    pub limit: u32,
    /// output: text (default), csv or json
    #[argh(option, default = "String::from(\"text\")")]
    pub format: String,
    /// database file
    #[argh(option)]
    pub db: Option<PathBuf>,
}

/// Runs `btestd usage`.
pub fn usage(a: UsageArgs) -> i32 {
    crate::logger::init(log::LevelFilter::Warn, false);
    finish("usage", usage_cmd(a))
}

fn usage_cmd(a: UsageArgs) -> CmdResult {
    let fmt: Format = a.format.parse()?;
    let filters = usize::from(a.user.is_some()) + usize::from(a.ip.is_some()) + usize::from(a.anonymous);
    if filters > 1 {
        return Err("give at most one of --user, --ip and --anonymous".into());
    }
    let store = open_for_read(&a.db)?;
    if a.sessions {
        return sessions_cmd(&store, &a, fmt);
    }
    let cfg = store.load_quota_config().map_err(|e| e.to_string())?;
    let subject = match (&a.user, a.ip, a.anonymous) {
        (Some(u), _, _) => Some(Subject::User(u.clone())),
        (_, Some(ip), _) => Some(Subject::Ip(IpKey::new(ip, cfg.ipv6_prefix))),
        (_, _, true) => Some(Subject::Anonymous),
        _ => None,
    };
    let today = Date::in_zone(SystemTime::now(), cfg.zone());
    let keys: Vec<PeriodKey> = match a.period {
        Some(p) => vec![today.key(p)],
        None => today.keys().to_vec(),
    };
    let filter = UsageFilter { subject: subject.clone() };
    let mut rows = store.usage_rows(&filter, &keys).map_err(|e| e.to_string())?;
    if let Some(s) = &subject {
        // Show the subject's periods even before it used any bytes.
        for k in &keys {
            if !rows.iter().any(|r| r.key == *k) {
                rows.push(crate::quota::UsageRow { subject: s.clone(), key: *k, rx: 0, tx: 0 });
            }
        }
    }
    rows.sort_by(|x, y| (&x.subject, x.key.period()).cmp(&(&y.subject, y.key.period())));
    let mut out = Table::new(fmt, "usage");
    if out.csv {
        out.header(
            [
                "scope",
                "subject",
                "period",
                "period_key",
                "rx_bytes",
                "tx_bytes",
                "total_bytes",
                "limit_dir",
                "limit_bytes",
                "remaining_bytes",
            ]
            .map(String::from)
            .to_vec(),
        );
    } else {
        out.header(["SUBJECT", "PERIOD", "KEY", "RX", "TX", "TOTAL", "LIMIT", "REMAINING"].map(String::from).to_vec());
    }
    for r in &rows {
        let period = r.key.period();
        let tightest = tightest_budget(&limits_for(&cfg, &r.subject), period, r.rx, r.tx);
        if out.csv {
            let (dir, limit, left) = match tightest {
                Some((d, l, left)) => (d.to_string(), l.to_string(), left.to_string()),
                None => (String::new(), "0".into(), String::new()),
            };
            out.row(vec![
                r.subject.scope().to_string(),
                r.subject.column(),
                period.to_string(),
                r.key.to_string(),
                r.rx.to_string(),
                r.tx.to_string(),
                r.rx.saturating_add(r.tx).to_string(),
                dir,
                limit,
                left,
            ]);
        } else {
            let (limit, left) = match tightest {
                Some((d, l, left)) => (format!("{} {d}", format_amount(l)), format_amount(left)),
                None => ("-".into(), "-".into()),
            };
            out.row(vec![
                subject_label(&r.subject),
                period.to_string(),
                r.key.to_string(),
                format_amount(r.rx),
                format_amount(r.tx),
                format_amount(r.rx.saturating_add(r.tx)),
                limit,
                left,
            ]);
        }
    }
    out.print()?;
    if fmt == Format::Text && rows.is_empty() {
        println!("(no usage in the current period)");
    }
    Ok(())
}

fn subject_label(s: &Subject) -> String {
    match s {
        Subject::User(n) => format!("user {n}"),
        Subject::Anonymous => "anonymous".into(),
        Subject::Ip(k) => format!("ip {k}"),
    }
}

fn limits_for(cfg: &QuotaConfig, s: &Subject) -> Limits {
    match s {
        Subject::User(n) => cfg.user_limits(n),
        Subject::Anonymous => cfg.anonymous,
        Subject::Ip(k) => cfg.ip_limits(k.addr()),
    }
}

/// The budget of `period` with the least left: (direction, budget, bytes left).
fn tightest_budget(l: &Limits, period: Period, rx: u64, tx: u64) -> Option<(Dir, u64, u64)> {
    Dir::ALL
        .into_iter()
        .filter_map(|d| {
            let b = l.get(period, d);
            (b > 0).then(|| (d, b, b.saturating_sub(d.of(rx, tx))))
        })
        .min_by_key(|&(_, _, left)| left)
}

fn sessions_cmd(store: &Store, a: &UsageArgs, fmt: Format) -> CmdResult {
    if a.anonymous {
        return Err("--sessions lists by --user or --ip; anonymous tests have no user column to filter on".into());
    }
    let rows = store.recent_sessions(a.user.as_deref(), a.ip, a.limit).map_err(|e: StoreError| e.to_string())?;
    let mut out = Table::new(fmt, "sessions");
    if out.csv {
        out.header(
            [
                "id",
                "started",
                "ended",
                "user",
                "peer_ip",
                "proto",
                "direction",
                "rx_bytes",
                "tx_bytes",
                "lost_packets",
                "end_reason",
                "sessions",
            ]
            .map(String::from)
            .to_vec(),
        );
        for s in &rows {
            out.row(vec![
                s.id.to_string(),
                iso_time(s.started),
                iso_time(s.ended),
                s.user.clone().unwrap_or_default(),
                s.peer_ip.clone(),
                s.proto.clone(),
                s.direction.clone(),
                s.rx_bytes.to_string(),
                s.tx_bytes.to_string(),
                s.lost_packets.to_string(),
                s.end_reason.clone(),
                s.merged.to_string(),
            ]);
        }
    } else {
        out.header(
            ["ID", "STARTED", "SECS", "USER", "PEER", "PROTO", "DIRECTION", "RX", "TX", "LOST", "END"]
                .map(String::from)
                .to_vec(),
        );
        for s in &rows {
            let end = if s.end_reason == MERGED_REASON {
                format!("{} sessions merged", s.merged)
            } else {
                s.end_reason.clone()
            };
            out.row(vec![
                s.id.to_string(),
                local_time(s.started),
                s.ended.saturating_sub(s.started).to_string(),
                s.user.clone().unwrap_or_else(|| "-".into()),
                s.peer_ip.clone(),
                s.proto.clone(),
                s.direction.clone(),
                format_amount(s.rx_bytes),
                format_amount(s.tx_bytes),
                s.lost_packets.to_string(),
                end,
            ]);
        }
    }
    out.print()?;
    if fmt == Format::Text && rows.is_empty() {
        println!("(no test records)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tightest_budget_picks_the_least_left() {
        let mut l = Limits::UNLIMITED;
        l.set(Period::Day, Dir::Rx, 100);
        l.set(Period::Day, Dir::Total, 150);
        assert_eq!(tightest_budget(&l, Period::Day, 90, 0), Some((Dir::Rx, 100, 10)));
        assert_eq!(tightest_budget(&l, Period::Day, 10, 135), Some((Dir::Total, 150, 5)));
        assert_eq!(tightest_budget(&l, Period::Week, 10, 135), None);
        assert_eq!(tightest_budget(&l, Period::Day, 200, 0), Some((Dir::Rx, 100, 0)));
    }
}
