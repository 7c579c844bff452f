//! `btestd user`, `btestd quota` and `btestd usage` as an operator runs
//! them: the real binary against a temporary database.

mod common;

use btestd::proto::{Direction, Protocol};
use btestd::quota::{Ledger, QuotaConfig};
use btestd::store::{SessionRecord, Store, Writer, WriterConfig};
use common::{BIN, TempDir};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A temporary database and what the commands run on it printed.
struct Db {
    dir: TempDir,
    /// Every stdout and stderr seen, for the "no secret ever printed" checks.
    seen: Mutex<String>,
}

impl Db {
    fn new() -> Db {
        Db { dir: TempDir::new(), seen: Mutex::new(String::new()) }
    }

    fn path(&self) -> PathBuf {
        self.dir.db()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--db").arg(self.path());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn btestd");
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let mut seen = self.seen.lock().unwrap();
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with exit code 1; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} should fail: {}", String::from_utf8_lossy(&out.stdout));
        String::from_utf8(out.stderr).unwrap()
    }

    fn assert_never_printed(&self, secret: &str) {
        assert!(!self.seen.lock().unwrap().contains(secret), "a password was printed");
    }
}

/// Splits a text table into rows of whitespace-separated cells.
fn table(s: &str) -> Vec<Vec<String>> {
    s.lines().map(|l| l.split_whitespace().map(String::from).collect()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn users_are_added_listed_changed_and_deleted() {
    let db = Db::new();
    assert!(db.ok(&["user", "add", "alice", "--password", "Tr0ub4dor"]).contains("user 'alice' added"));
    let out = db.run_with_stdin(&["user", "add", "bob", "--password-file", "-", "--md5"], Some("c0rrect horse\n"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pwfile = db.dir.0.join("pw");
    std::fs::write(&pwfile, "b4ttery staple\nsecond line ignored\n").unwrap();
    db.ok(&["user", "add", "carol", "--password-file", pwfile.to_str().unwrap(), "--disabled"]);

    let rows = table(&db.ok(&["user", "list"]));
    assert_eq!(rows[0], ["NAME", "ENABLED", "MD5", "CREATED", "LIMITS"]);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[1][..3], ["alice", "yes", "no"]);
    assert_eq!(rows[2][..3], ["bob", "yes", "yes"]);
    assert_eq!(rows[3][..3], ["carol", "no", "no"]);
    assert_eq!(rows[1].last().unwrap(), "-");

    db.ok(&["user", "set", "alice", "--day-total", "10G", "--month-rx", "1TiB", "--disable"]);
    db.ok(&["user", "set", "bob", "--no-md5"]);
    db.ok(&["user", "set", "carol", "--enable", "--password", "n3w-p4ss", "--md5"]);
    let csv = db.ok(&["user", "list", "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "name,enabled,md5,created,day_rx,day_tx,day_total,week_rx,week_tx,week_total,month_rx,month_tx,month_total"
    );
    let alice: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(alice[..3], ["alice", "no", "no"]);
    assert_eq!(alice[4..], ["0", "0", "10000000000", "0", "0", "0", "1099511627776", "0", "0"]);
    assert!(lines[2].starts_with("bob,yes,no,"));
    assert!(lines[3].starts_with("carol,yes,yes,"));
    let text = db.ok(&["user", "list"]);
    assert!(text.contains("day total 10.0 GB, month rx 1.1 TB"), "{text}");

    // The store holds what the daemon needs: validators, MD5 only on request.
    let store = Store::open(&db.path()).unwrap();
    let users = store.load_users().unwrap();
    assert!(users.get(b"alice").is_some_and(|u| !u.enabled && u.md5_password.is_none()));
    assert!(users.get(b"bob").is_some_and(|u| u.md5_password.is_none()));
    assert_eq!(users.get(b"carol").and_then(|u| u.md5_password.clone()), Some(b"n3w-p4ss".to_vec()));
    drop(store);

    assert!(db.ok(&["user", "del", "bob"]).contains("deleted"));
    assert_eq!(table(&db.ok(&["user", "list"])).len(), 3);
    for secret in ["Tr0ub4dor", "c0rrect horse", "b4ttery staple", "n3w-p4ss"] {
        db.assert_never_printed(secret);
    }
}

#[test]
fn mistakes_get_clear_errors_and_exit_code_1() {
    let db = Db::new();
    let e = db.fails(&["user", "add", "alice"]);
    assert!(e.contains("no password given") && e.contains("--password-file"), "{e}");
    db.ok(&["user", "add", "alice", "--password", "pw"]);
    assert!(db.fails(&["user", "add", "alice", "--password", "pw"]).contains("already exists"));
    assert!(db.fails(&["user", "set", "zed", "--disable"]).contains("no user 'zed'"));
    assert!(db.fails(&["user", "del", "zed"]).contains("no user 'zed'"));
    assert!(db.fails(&["user", "set", "alice", "--day-total", "lots"]).contains("invalid amount 'lots'"));
    assert!(db.fails(&["user", "set", "alice", "--md5"]).contains("MD5 logins need the password"));
    assert!(db.fails(&["user", "set", "alice"]).contains("nothing to change"));
    assert!(db.fails(&["user", "list", "--format", "xml"]).contains("use text, csv or json"));
    assert!(db.fails(&["quota", "set", "--ip", "10.0.0.0/33", "--day-total", "1G"]).contains("invalid"));
    assert!(db.fails(&["quota", "set", "--anonymous"]).contains("at least one budget"));
    assert!(db.fails(&["quota", "set", "--anonymous", "--ip-default", "--day-rx", "1"]).contains("exactly one"));
    assert!(db.fails(&["quota", "del", "--anonymous"]).contains("no budgets"));
    assert!(db.fails(&["quota", "config", "--timezone", "mars"]).contains("use local or utc"));
    assert!(db.fails(&["quota", "config", "--ipv6-prefix", "0"]).contains("1 to 128"));

    // A database path that cannot exist.
    let file = db.dir.0.join("plainfile");
    std::fs::write(&file, "x").unwrap();
    let out = Command::new(BIN)
        .args(["user", "add", "x", "--password", "pw", "--db"])
        .arg(file.join("btestd.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("plainfile") && e.contains("--db"), "{e}");

    let out = Command::new(BIN).args(["usage", "--db"]).arg(db.dir.0.join("missing.db")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    db.assert_never_printed("pw\n");
}

#[test]
fn quotas_are_set_listed_and_removed() {
    let db = Db::new();
    db.ok(&["quota", "set", "--ip", "10.1.2.3/8", "--day-total", "5G", "--week-rx", "0"]);
    db.ok(&["quota", "set", "--ip-default", "--month-total", "100GB"]);
    db.ok(&["quota", "set", "--anonymous", "--day-rx", "1GiB"]);
    let rows = table(&db.ok(&["quota", "list"]));
    assert_eq!(rows[0], ["SCOPE", "SUBJECT", "PERIOD", "DIR", "BUDGET"]);
    assert!(rows.contains(&["ip", "10.0.0.0/8", "day", "total", "5.0", "GB"].map(String::from).to_vec()));
    assert!(rows.contains(&["ip", "10.0.0.0/8", "week", "rx", "unlimited"].map(String::from).to_vec()));
    assert!(rows.contains(&["ip", "default", "month", "total", "100.0", "GB"].map(String::from).to_vec()));
    assert!(rows.contains(&["anonymous", "-", "day", "rx", "1.1", "GB"].map(String::from).to_vec()));
    let csv = db.ok(&["quota", "list", "--format", "csv"]);
    assert!(csv.starts_with("scope,subject,period,dir,bytes\n"));
    assert!(csv.contains("anonymous,,day,rx,1073741824\n"), "{csv}");

    db.ok(&["quota", "config", "--timezone", "utc", "--ipv6-prefix", "56", "--retention-days", "30"]);
    let cfg = db.ok(&["quota", "config"]);
    assert_eq!(cfg, "timezone: utc\nipv6-prefix: 56\nretention-days: 30\n");

    db.ok(&["quota", "del", "--ip", "10.0.0.0/8"]);
    let store = Store::open(&db.path()).unwrap();
    let q = store.load_quota_config().unwrap();
    assert!(q.ip_overrides.is_empty());
    assert!(q.utc);
    assert_eq!(q.ipv6_prefix, 56);
}

#[test]
fn usage_shows_counters_limits_and_sessions() {
    let db = Db::new();
    db.ok(&["user", "add", "alice", "--password", "pw"]);
    db.ok(&["user", "set", "alice", "--day-total", "10k", "--month-rx", "1M"]);
    db.ok(&["quota", "set", "--ip-default", "--day-tx", "100k"]);
    db.ok(&["quota", "config", "--timezone", "utc"]);
    {
        let store = Store::open(&db.path()).unwrap();
        let cfg = store.load_quota_config().unwrap();
        let w = Writer::start(store, &cfg, WriterConfig::default()).unwrap();
        let now = SystemTime::now();
        let mut l = Ledger::new(cfg, &[], now);
        w.record(&l.charge(Some("alice"), ip("192.0.2.7"), 4_000, 2_500, now));
        w.record(&l.charge(None, ip("2001:db8:1:2::9"), 10, 20, now));
        w.session(SessionRecord {
            user: Some("alice".into()),
            peer_ip: ip("192.0.2.7"),
            proto: Protocol::Tcp,
            direction: Direction::Both,
            started: now - Duration::from_secs(30),
            ended: now,
            rx_bytes: 4_000,
            tx_bytes: 2_500,
            lost_packets: 0,
            end_reason: "peer-closed".into(),
        });
        w.shutdown();
    }
    let rows = table(&db.ok(&["usage", "--user", "alice"]));
    assert_eq!(rows[0], ["SUBJECT", "PERIOD", "KEY", "RX", "TX", "TOTAL", "LIMIT", "REMAINING"]);
    assert_eq!(rows.len(), 4);
    // user alice day KEY 4.0 kB 2.5 kB 6.5 kB 10.0 kB total 3.5 kB
    assert_eq!(rows[1][..3], ["user", "alice", "day"]);
    assert_eq!(rows[1][4..], ["4.0", "kB", "2.5", "kB", "6.5", "kB", "10.0", "kB", "total", "3.5", "kB"]);
    assert_eq!(rows[2][2], "week");
    assert_eq!(rows[2][10..], ["-", "-"]);
    assert_eq!(rows[3][2], "month");
    assert_eq!(rows[3][10..], ["1.0", "MB", "rx", "996.0", "kB"]);

    let csv = db.ok(&["usage", "--period", "day", "--format", "csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "scope,subject,period,period_key,rx_bytes,tx_bytes,total_bytes,limit_dir,limit_bytes,remaining_bytes"
    );
    let today = btestd::quota::Date::in_zone(SystemTime::now(), btestd::quota::Zone::Utc);
    assert!(lines.contains(&format!("user,alice,day,{today},4000,2500,6500,total,10000,3500").as_str()), "{csv}");
    assert!(lines.contains(&format!("ip,192.0.2.7,day,{today},4000,2500,6500,tx,100000,97500").as_str()), "{csv}");
    assert!(lines.contains(&format!("ip,2001:db8:1:2::/64,day,{today},10,20,30,tx,100000,99980").as_str()), "{csv}");
    assert!(lines.contains(&format!("anonymous,,day,{today},10,20,30,,0,").as_str()), "{csv}");

    let ipv6 = db.ok(&["usage", "--ip", "2001:db8:1:2::77", "--period", "month", "--format", "csv"]);
    assert_eq!(ipv6.lines().count(), 2, "{ipv6}");

    let s = table(&db.ok(&["usage", "--sessions"]));
    assert_eq!(s[0], ["ID", "STARTED", "SECS", "USER", "PEER", "PROTO", "DIRECTION", "RX", "TX", "LOST", "END"]);
    assert_eq!(s[1][3..], ["30", "alice", "192.0.2.7", "tcp", "both", "4.0", "kB", "2.5", "kB", "0", "peer-closed"]);
    let s = db.ok(&["usage", "--sessions", "--format", "csv", "--ip", "192.0.2.7"]);
    assert!(s.lines().nth(1).unwrap().ends_with(",alice,192.0.2.7,tcp,both,4000,2500,0,peer-closed,1"), "{s}");
    db.assert_never_printed("pw");
}

#[test]
fn cli_changes_while_the_writer_commits_never_hit_a_lock() {
    let db = Db::new();
    db.ok(&["user", "add", "alice", "--password", "pw"]);
    let stop = Arc::new(AtomicBool::new(false));
    let path = db.path();
    let daemon = {
        let stop = stop.clone();
        std::thread::spawn(move || daemon_side(&path, &stop))
    };
    let runs: u32 = std::env::var("BTESTD_CONTENTION_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let start = Instant::now();
    for i in 0..runs {
        let budget = format!("{}k", i + 1);
        let toggle = if i % 2 == 0 { "--disable" } else { "--enable" };
        let out = db.run(&["user", "set", "alice", "--day-total", &budget, toggle]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {i} failed: {err}");
        assert!(!err.contains("locked"), "run {i}: {err}");
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (commits, reloads, errors) = daemon.join().unwrap();
    eprintln!(
        "{runs} 'user set' runs in {:.1} s ({:.1} ms each) against {commits} writer commits and {reloads} reloads",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / f64::from(runs)
    );
    assert!(errors.is_empty(), "writer errors: {errors:?}");
    assert!(commits > 10, "the writer kept committing ({commits})");
    assert!(reloads > 0);
    let store = Store::open(&db.path()).unwrap();
    let q = store.load_quota_config().unwrap();
    assert_eq!(
        q.user_limits("alice").get(btestd::quota::Period::Day, btestd::quota::Dir::Total),
        u64::from(runs) * 1000
    );
}

/// The daemon's side: deltas for 1,000 sessions a second, commits every
/// 20 ms, reloads as the CLI changes things. Returns (commits, reloads,
/// errors seen).
fn daemon_side(path: &Path, stop: &AtomicBool) -> (u64, u32, Vec<String>) {
    let store = Store::open(path).unwrap();
    let config = WriterConfig {
        flush_interval: Duration::from_millis(20),
        reload_check: Duration::from_millis(100),
        ..WriterConfig::default()
    };
    let w = Writer::start(store, &QuotaConfig::default(), config).unwrap();
    let mut l = Ledger::new(QuotaConfig::default(), &[], SystemTime::now());
    let (mut reloads, mut errors) = (0u32, Vec::new());
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..20 {
            n = n.wrapping_add(1);
            let ip = IpAddr::from([10, 0, (n / 250 % 4) as u8, (n % 250) as u8]);
            w.record(&l.charge(Some(&format!("user{}", n % 1000)), ip, 1500, 64, SystemTime::now()));
        }
        if w.poll_reload().is_some() {
            reloads += 1;
        }
        if let Some(e) = w.health().and_then(|h| h.error) {
            if errors.last() != Some(&e) {
                errors.push(e);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let commits = w.health().map_or(0, |h| h.commits);
    w.shutdown();
    (commits, reloads, errors)
}
