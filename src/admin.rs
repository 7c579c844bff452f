//! `btestd user`, `btestd quota` and `btestd usage`: edit and read the
//! database, also while the daemon runs (it picks changes up within two
//! seconds). Secrets go in; no command ever prints one.

use crate::cli::parse_bytes;
use crate::quota::period::Zone;
use crate::quota::{
    Cidr, Date, Dir, IpKey, Limits, PartialLimits, Period, PeriodKey, QuotaConfig, Subject, format_amount,
};
use crate::store::config::{LimitRow, SETTING_IPV6_PREFIX, SETTING_RETENTION_DAYS, SETTING_TIMEZONE};
use crate::store::usage::{MERGED_REASON, UsageFilter};
use crate::store::{LimitScope, OpenOptions, Store, StoreError, UserChange, default_db_path};
use argh::FromArgs;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Manage the users clients log in as.
#[derive(FromArgs)]
#[argh(subcommand, name = "user")]
pub struct UserArgs {
    #[argh(subcommand)]
    pub cmd: UserCmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub enum UserCmd {
    Add(UserAdd),
    Del(UserDel),
    List(UserList),
    Set(UserSet),
}

/// Add a user (its EC-SRP5 validator is stored, never the password unless --md5).
#[derive(FromArgs)]
#[argh(subcommand, name = "add")]
pub struct UserAdd {
    /// user name
    #[argh(positional)]
    pub name: String,
    /// password (visible to other local users in the process list; prefer --password-file)
    #[argh(option)]
    pub password: Option<String>,
    /// read the password from the first line of this file ('-' = standard input)
    #[argh(option)]
    pub password_file: Option<PathBuf>,
    /// also store the password itself so RouterOS before 6.43 (MD5 login) can authenticate
    #[argh(switch)]
    pub md5: bool,
    /// add the user disabled
    #[argh(switch)]
    pub disabled: bool,
    /// database file (default /var/lib/btestd/btestd.db; /var/db/btestd/btestd.db on FreeBSD)
    #[argh(option)]
    pub db: Option<PathBuf>,
}

/// Delete a user and its limits (its usage history stays).
#[derive(FromArgs)]
#[argh(subcommand, name = "del")]
pub struct UserDel {
    /// user name
    #[argh(positional)]
    pub name: String,
    /// database file
    #[argh(option)]
    pub db: Option<PathBuf>,
}

/// List users and their limits (never secrets).
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
pub struct UserList {
    /// output: text (default) or csv
    #[argh(option, default = "String::from(\"text\")")]
    pub format: String,
    /// database file
    #[argh(option)]
    pub db: Option<PathBuf>,
}

/// Change a user's password, state or limits (amounts like 10G or 512MiB; 0 = unlimited).
#[derive(FromArgs)]
#[argh(subcommand, name = "set")]
pub struct UserSet {
    /// user name
    #[argh(positional)]
    pub name: String,
    /// new password
    #[argh(option)]
    pub password: Option<String>,
    /// read the new password from the first line of this file ('-' = standard input)
    #[argh(option)]
    pub password_file: Option<PathBuf>,
    /// store the password for MD5 logins (needs --password or --password-file)
    #[argh(switch)]
    pub md5: bool,
    /// remove the stored MD5 password
    #[argh(switch)]
    pub no_md5: bool,
    /// allow the user to log in
    #[argh(switch)]
    pub enable: bool,
    /// refuse the user's logins
    #[argh(switch)]
    pub disable: bool,
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
}

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
}

/// List every budget and the quota settings.
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
pub struct QuotaList {
    /// output: text (default) or csv
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
}

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
    /// output: text (default) or csv
    #[argh(option, default = "String::from(\"text\")")]
    pub format: String,
    /// database file
    #[argh(option)]
    pub db: Option<PathBuf>,
}

/// What a command failed with; printed after the command's name.
type CmdResult = Result<(), String>;

fn finish(cmd: &str, r: CmdResult) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("btestd {cmd}: {e}");
            1
        }
    }
}

fn db_path(db: &Option<PathBuf>) -> PathBuf {
    db.clone().unwrap_or_else(default_db_path)
}

/// Opens (creating if needed) the database for a change.
fn open_for_write(db: &Option<PathBuf>) -> Result<Store, String> {
    Store::open_with(&db_path(db), &OpenOptions::default()).map_err(|e| e.to_string())
}

/// Opens an existing database for reading; a missing one is an error, not a new file.
fn open_for_read(db: &Option<PathBuf>) -> Result<Store, String> {
    let path = db_path(db);
    if !path.exists() {
        return Err(format!(
            "database {} does not exist; 'btestd user add' creates it, or give the right --db",
            path.display()
        ));
    }
    Store::open_with(&path, &OpenOptions::default()).map_err(|e| e.to_string())
}

#[derive(PartialEq, Eq)]
enum Format {
    Text,
    Csv,
}

fn format(s: &str) -> Result<Format, String> {
    match s {
        "text" => Ok(Format::Text),
        "csv" => Ok(Format::Csv),
        _ => Err(format!("invalid --format '{s}': use text or csv")),
    }
}

/// Reads the first line of a file, or of standard input for `-` (without
/// echo when it is a terminal).
fn read_password(file: &Path) -> Result<String, String> {
    let mut line = String::new();
    if file == Path::new("-") {
        let echo = EchoOff::new();
        if echo.is_some() {
            eprint!("Password: ");
        }
        std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the password: {e}"))?;
        if echo.is_some() {
            eprintln!();
        }
    } else {
        let f =
            std::fs::File::open(file).map_err(|e| format!("cannot read the password file {}: {e}", file.display()))?;
        std::io::BufReader::new(f)
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password file {}: {e}", file.display()))?;
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Turns terminal echo off on standard input while alive (None when stdin
/// is not a terminal).
struct EchoOff(libc::termios);

impl EchoOff {
    fn new() -> Option<EchoOff> {
        // SAFETY: isatty only inspects the descriptor.
        if unsafe { libc::isatty(0) } != 1 {
            return None;
        }
        // SAFETY: termios is plain data; tcgetattr fills it for fd 0.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a valid, writable termios.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return None;
        }
        let saved = t;
        t.c_lflag &= !libc::ECHO;
        // SAFETY: `t` is a termios obtained from tcgetattr.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        Some(EchoOff(saved))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `new`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.0) };
    }
}

fn password_from(password: &Option<String>, file: &Option<PathBuf>) -> Result<Option<String>, String> {
    match (password, file) {
        (Some(_), Some(_)) => Err("give --password or --password-file, not both".into()),
        (Some(p), None) => Ok(Some(p.clone())),
        (None, Some(f)) => read_password(f).map(Some),
        (None, None) => Ok(None),
    }
}

fn limit_cells(cells: [Option<u64>; 9]) -> PartialLimits {
    let mut out = PartialLimits::default();
    let mut it = cells.into_iter();
    for p in Period::ALL {
        for d in Dir::ALL {
            out.set(p, d, it.next().flatten());
        }
    }
    out
}

/// Runs `btestd user ...`.
pub fn user(a: UserArgs) -> i32 {
    crate::logger::init(log::LevelFilter::Warn, false);
    match a.cmd {
        UserCmd::Add(a) => finish("user add", user_add(a)),
        UserCmd::Del(a) => finish("user del", user_del(a)),
        UserCmd::List(a) => finish("user list", user_list(a)),
        UserCmd::Set(a) => finish("user set", user_set(a)),
    }
}

fn user_add(a: UserAdd) -> CmdResult {
    let Some(password) = password_from(&a.password, &a.password_file)? else {
        return Err(format!(
            "no password given: use --password-file FILE (or '-' to type it or pipe it in), or --password; \
             e.g. btestd user add {} --password-file -",
            a.name
        ));
    };
    let mut store = open_for_write(&a.db)?;
    store.add_user(&a.name, &password, a.md5, !a.disabled).map_err(|e| e.to_string())?;
    println!(
        "user '{}' added{}{}",
        a.name,
        if a.md5 { " (MD5 logins allowed)" } else { "" },
        if a.disabled { " (disabled)" } else { "" }
    );
    Ok(())
}

fn user_del(a: UserDel) -> CmdResult {
    let mut store = open_for_write(&a.db)?;
    store.del_user(&a.name).map_err(|e| e.to_string())?;
    println!("user '{}' deleted", a.name);
    Ok(())
}

fn user_set(a: UserSet) -> CmdResult {
    if a.md5 && a.no_md5 {
        return Err("give --md5 or --no-md5, not both".into());
    }
    if a.enable && a.disable {
        return Err("give --enable or --disable, not both".into());
    }
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
    let change = UserChange {
        password: password_from(&a.password, &a.password_file)?,
        md5: if a.md5 {
            Some(true)
        } else if a.no_md5 {
            Some(false)
        } else {
            None
        },
        enabled: if a.enable {
            Some(true)
        } else if a.disable {
            Some(false)
        } else {
            None
        },
    };
    if change.password.is_none() && change.md5.is_none() && change.enabled.is_none() && limits.is_empty() {
        return Err("nothing to change: give a password, --enable/--disable, --md5/--no-md5 or a limit \
                    such as --day-total 10G"
            .into());
    }
    let mut store = open_for_write(&a.db)?;
    store.change_user(&a.name, &change, &limits).map_err(|e| e.to_string())?;
    println!("user '{}' updated", a.name);
    Ok(())
}

fn limits_summary(l: &Limits) -> String {
    let parts: Vec<String> = l.iter().map(|(p, d, b)| format!("{p} {d} {}", format_amount(b))).collect();
    if parts.is_empty() { "-".into() } else { parts.join(", ") }
}

fn limit_cells_csv(l: &Limits) -> Vec<String> {
    Period::ALL.into_iter().flat_map(|p| Dir::ALL.into_iter().map(move |d| l.get(p, d).to_string())).collect()
}

fn limit_headers_csv() -> Vec<String> {
    Period::ALL.into_iter().flat_map(|p| Dir::ALL.into_iter().map(move |d| format!("{p}_{d}"))).collect()
}

fn user_list(a: UserList) -> CmdResult {
    let fmt = format(&a.format)?;
    let store = open_for_read(&a.db)?;
    let users = store.list_users().map_err(|e| e.to_string())?;
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut out = Table::new(fmt == Format::Csv);
    if out.csv {
        let mut h: Vec<String> = ["name", "enabled", "md5", "created"].map(String::from).to_vec();
        h.extend(limit_headers_csv());
        out.header(h);
        for u in &users {
            let mut row = vec![u.name.clone(), yes(u.enabled), yes(u.md5), iso_time(u.created)];
            row.extend(limit_cells_csv(&u.limits));
            out.row(row);
        }
    } else {
        out.header(["NAME", "ENABLED", "MD5", "CREATED", "LIMITS"].map(String::from).to_vec());
        for u in &users {
            out.row(vec![u.name.clone(), yes(u.enabled), yes(u.md5), local_time(u.created), limits_summary(&u.limits)]);
        }
    }
    out.print()
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
    let mut store = open_for_write(&a.db)?;
    store.set_limits(&scope, &limits).map_err(|e| e.to_string())?;
    println!("budgets of {scope} updated");
    Ok(())
}

fn quota_del(a: QuotaDel) -> CmdResult {
    let scope = scope_of(&a.ip, a.ip_default, a.anonymous, &a.user)?;
    let mut store = open_for_write(&a.db)?;
    if !store.del_limits(&scope).map_err(|e| e.to_string())? {
        return Err(format!("{scope} has no budgets set; 'btestd quota list' shows them"));
    }
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
    let fmt = format(&a.format)?;
    let store = open_for_read(&a.db)?;
    let rows: Vec<LimitRow> = store.list_limits().map_err(|e| e.to_string())?;
    let cfg = store.load_quota_config().map_err(|e| e.to_string())?;
    let retention = store.retention_days().map_err(|e| e.to_string())?;
    let mut out = Table::new(fmt == Format::Csv);
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
    let mut store = open_for_write(&a.db)?;
    store.set_settings(&pairs).map_err(|e| e.to_string())?;
    println!("settings updated");
    Ok(())
}

/// Runs `btestd usage`.
pub fn usage(a: UsageArgs) -> i32 {
    crate::logger::init(log::LevelFilter::Warn, false);
    finish("usage", usage_cmd(a))
}

fn usage_cmd(a: UsageArgs) -> CmdResult {
    let fmt = format(&a.format)?;
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
    let mut out = Table::new(fmt == Format::Csv);
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
    let mut out = Table::new(fmt == Format::Csv);
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

/// `2026-11-24 06:30:00` in the server's local time.
fn local_time(unix: i64) -> String {
    let off = Zone::Local.offset_at(unix);
    let t = unix.saturating_add(i64::from(off));
    let s = t.rem_euclid(86_400);
    format!("{} {:02}:{:02}:{:02}", Date::from_days(t.div_euclid(86_400)), s / 3600, s / 60 % 60, s % 60)
}

/// `2026-11-24T06:30:00Z`.
fn iso_time(unix: i64) -> String {
    let s = unix.rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}Z", Date::from_days(unix.div_euclid(86_400)), s / 3600, s / 60 % 60, s % 60)
}

/// A text table with aligned columns, or CSV.
struct Table {
    csv: bool,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(csv: bool) -> Table {
        Table { csv, rows: Vec::new() }
    }

    fn header(&mut self, h: Vec<String>) {
        self.rows.insert(0, h);
    }

    fn row(&mut self, r: Vec<String>) {
        self.rows.push(r);
    }

    fn print(&self) -> CmdResult {
        let mut out = std::io::stdout().lock();
        let w = |e: std::io::Error| format!("cannot write the output: {e}");
        if self.csv {
            for r in &self.rows {
                let line: Vec<String> = r.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{}", line.join(",")).map_err(w)?;
            }
            return Ok(());
        }
        if self.rows.len() <= 1 {
            return Ok(());
        }
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| self.rows.iter().filter_map(|r| r.get(c)).map(|f| f.chars().count()).max().unwrap_or(0))
            .collect();
        for r in &self.rows {
            let mut line = String::new();
            for (c, f) in r.iter().enumerate() {
                line.push_str(f);
                if c + 1 < r.len() {
                    let pad = widths[c].saturating_sub(f.chars().count()) + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            writeln!(out, "{line}").map_err(w)?;
        }
        Ok(())
    }
}

fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\n', '\r']) { format!("\"{}\"", f.replace('"', "\"\"")) } else { f.to_string() }
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

    #[test]
    fn times_format_as_utc_and_csv_quotes() {
        assert_eq!(iso_time(1_795_478_400 + 3661), "2026-11-24T01:01:01Z");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }

    #[test]
    fn limit_options_fill_period_rows_in_order() {
        let l = limit_cells([Some(1), None, None, None, Some(5), None, None, None, Some(9)]);
        assert_eq!(l.get(Period::Day, Dir::Rx), Some(1));
        assert_eq!(l.get(Period::Week, Dir::Tx), Some(5));
        assert_eq!(l.get(Period::Month, Dir::Total), Some(9));
        assert_eq!(l.get(Period::Day, Dir::Tx), None);
    }
}
