//! `btestd user`: add, delete, list and change the users clients log in as.
//! A password goes in and only its validator (and, with --md5, the password
//! itself) is stored; no command ever prints a secret.

use super::db::{open_for_read, open_for_write};
use super::exit::{CmdResult, finish};
use super::parse::parse_bytes;
use super::password::password_from;
use super::quota::limit_cells;
use super::table::{Format, Table, iso_time, local_time};
use crate::quota::{Dir, Limits, Period, format_amount};
use crate::store::UserChange;
use argh::FromArgs;
use std::path::PathBuf;

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
    /// copy of the database (on flash): restored if missing, saved after a change
    #[argh(option)]
    pub persist: Option<PathBuf>,
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
    /// copy of the database (on flash): restored if missing, saved after a change
    #[argh(option)]
    pub persist: Option<PathBuf>,
}

/// List users and their limits (never secrets).
#[derive(FromArgs)]
#[argh(subcommand, name = "list")]
pub struct UserList {
    /// output: text (default), csv or json
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
    /// copy of the database (on flash): restored if missing, saved after a change
    #[argh(option)]
    pub persist: Option<PathBuf>,
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
    let mut db = open_for_write(&a.db, &a.persist)?;
    let store = &mut db.store;
    store.add_user(&a.name, &password, a.md5, !a.disabled).map_err(|e| e.to_string())?;
    db.saved()?;
    println!(
        "user '{}' added{}{}",
        a.name,
        if a.md5 { " (MD5 logins allowed)" } else { "" },
        if a.disabled { " (disabled)" } else { "" }
    );
    Ok(())
}

fn user_del(a: UserDel) -> CmdResult {
    let mut db = open_for_write(&a.db, &a.persist)?;
    let store = &mut db.store;
    store.del_user(&a.name).map_err(|e| e.to_string())?;
    db.saved()?;
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
    let mut db = open_for_write(&a.db, &a.persist)?;
    let store = &mut db.store;
    store.change_user(&a.name, &change, &limits).map_err(|e| e.to_string())?;
    db.saved()?;
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
    let fmt: Format = a.format.parse()?;
    let store = open_for_read(&a.db)?;
    let users = store.list_users().map_err(|e| e.to_string())?;
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut out = Table::new(fmt, "users");
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
