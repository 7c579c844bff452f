//! The SQLite store and its writer on real files in a temporary directory.

mod common;

use btestd::proto::{Direction, Protocol};
use btestd::quota::{Date, Dir, Ledger, PartialLimits, Period, QuotaConfig, Zone};
use btestd::store::schema::{MIGRATIONS, SCHEMA_VERSION};
use btestd::store::{LimitScope, OpenOptions, SessionRecord, Store, StoreError, Writer, WriterConfig};
use common::TempDir;
use rusqlite::Connection;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// Log lines of the whole test process (tests filter by their file path).
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct TestLogger;

impl log::Log for TestLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let line = format!("{} {}", r.level(), r.args());
        eprintln!("{line}");
        LOG.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

fn capture_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = log::set_logger(&TestLogger);
        log::set_max_level(log::LevelFilter::Info);
    });
}

fn log_lines(about: &Path) -> Vec<String> {
    let needle = about.display().to_string();
    LOG.lock().unwrap().iter().filter(|l| l.contains(&needle)).cloned().collect()
}

fn quick() -> OpenOptions {
    OpenOptions { busy_timeout: Duration::from_millis(200), ..OpenOptions::default() }
}

fn fast_writer() -> WriterConfig {
    WriterConfig {
        flush_interval: Duration::from_millis(100),
        reload_check: Duration::from_millis(100),
        drain_timeout: Duration::from_secs(3),
        ..WriterConfig::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn usage(conn: &Connection, scope: &str, subject: &str, period: &str) -> Option<(String, i64, i64)> {
    conn.query_row(
        "SELECT period_key, rx, tx FROM usage WHERE scope = ?1 AND subject = ?2 AND period = ?3",
        [scope, subject, period],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .ok()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs a test mounted; unmounted on drop, before the directory under it goes.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

/// Mounts a tmpfs on `dir` (root only); None when not possible here.
fn mount_tmpfs(dir: &Path, opts: &str) -> Option<Mounted> {
    let ok = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir)
            .output()
            .is_ok_and(|o| o.status.success());
    ok.then(|| Mounted(dir.to_path_buf()))
}

fn remount(dir: &Path, opts: &str) -> bool {
    Command::new("mount").args(["-o", &format!("remount,{opts}")]).arg(dir).output().is_ok_and(|o| o.status.success())
}

#[test]
fn schema_is_created_private_and_versioned() {
    let t = TempDir::new();
    let path = t.0.join("sub/dir/btestd.db");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    for table in ["meta", "users", "limits", "usage", "sessions", "settings"] {
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "{table}");
    }
    let secret = store.server_secret().unwrap();
    drop(store);
    assert_eq!(Store::open(&path).unwrap().server_secret().unwrap(), secret, "the secret survives restarts");
}

#[test]
fn older_schema_is_migrated_keeping_its_data() {
    let t = TempDir::new();
    {
        let conn = Connection::open(t.db()).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO sessions(user, peer_ip, proto, direction, started, ended, rx_bytes, tx_bytes,
                                  lost_packets, end_reason)
             VALUES('alice', '192.0.2.1', 'tcp', 'receive', 10, 20, 1000, 0, 0, 'peer-closed');
             INSERT INTO usage VALUES('user', 'alice', 'day', '2026-11-24', 1000, 0);",
        )
        .unwrap();
    }
    let store = Store::open(&t.db()).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store.server_secret().unwrap();
    let s = store.recent_sessions(Some("alice"), None, 10).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].rx_bytes, s[0].merged, s[0].direction.as_str()), (1000, 1, "receive"));
    assert_eq!(store.config_generation().unwrap(), 0);
}

#[test]
fn newer_schema_is_refused_with_advice() {
    let t = TempDir::new();
    drop(Store::open(&t.db()).unwrap());
    Connection::open(t.db()).unwrap().execute_batch("PRAGMA user_version = 3").unwrap();
    let e = Store::open(&t.db()).unwrap_err();
    assert!(matches!(e, StoreError::TooNew { found: 3, supported: 2, .. }));
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "database schema version 3 is newer than this btestd supports (2); upgrade btestd or use another --db"
        ),
        "{msg}"
    );
}

#[test]
fn garbage_file_is_reported_as_corrupt() {
    let t = TempDir::new();
    std::fs::write(t.db(), vec![0x5a; 8192]).unwrap();
    let msg = Store::open(&t.db()).unwrap_err().to_string();
    assert!(msg.contains(&format!("database {} is corrupt", t.db().display())), "{msg}");
    assert!(msg.contains("move it away to start fresh"), "{msg}");
}

#[test]
fn damaged_pages_are_found_at_open() {
    let t = TempDir::new();
    {
        let mut s = Store::open(&t.db()).unwrap();
        for i in 0..300 {
            s.add_user(&format!("user{i:03}"), "pw", false, true).unwrap();
        }
    }
    // Overwrite the middle of the file (b-tree pages, not the header).
    let mut bytes = std::fs::read(t.db()).unwrap();
    assert!(bytes.len() > 16384, "{} bytes", bytes.len());
    for b in &mut bytes[8192..12288] {
        *b = 0xff;
    }
    std::fs::write(t.db(), &bytes).unwrap();
    let e = Store::open(&t.db()).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("move it away"));
}

#[test]
fn another_programs_database_is_not_touched() {
    let t = TempDir::new();
    Connection::open(t.db()).unwrap().execute_batch("CREATE TABLE users(id INTEGER PRIMARY KEY)").unwrap();
    let msg = Store::open(&t.db()).unwrap_err().to_string();
    assert!(msg.contains("another program"), "{msg}");
}

#[test]
fn a_locked_database_is_reported_as_locked() {
    let t = TempDir::new();
    drop(Store::open(&t.db()).unwrap());
    let holder = Connection::open(t.db()).unwrap();
    holder.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; DELETE FROM settings;").unwrap();
    let e = Store::open_with(&t.db(), &quick()).unwrap_err();
    assert!(matches!(e, StoreError::Locked { .. }), "{e}");
    assert!(e.to_string().contains("is locked by another process"), "{e}");
}

#[test]
fn writer_puts_exact_bytes_in_every_period_row() {
    let t = TempDir::new();
    let store = Store::open(&t.db()).unwrap();
    let cfg = QuotaConfig { utc: true, ..QuotaConfig::default() };
    let w = Writer::start(store, &cfg, fast_writer()).unwrap();
    let now = SystemTime::now();
    let mut l = Ledger::new(cfg, &[], now);
    for _ in 0..10 {
        w.record(&l.charge(Some("alice"), ip("192.0.2.7"), 1_000, 7, now));
        w.record(&l.charge(None, ip("2001:db8:0:1::5"), 3, 50_000, now));
        w.record(&l.charge(None, ip("2001:db8:0:1::6"), 1, 0, now));
    }
    w.session(SessionRecord {
        user: Some("alice".into()),
        peer_ip: ip("::ffff:192.0.2.7"),
        proto: Protocol::Udp,
        direction: Direction::ClientToServer,
        started: now - Duration::from_secs(10),
        ended: now,
        rx_bytes: 10_000,
        tx_bytes: 70,
        lost_packets: 3,
        end_reason: "peer-closed".into(),
    });
    assert!(w.sync(Duration::from_secs(10)));
    let h = w.health().unwrap();
    assert_eq!((h.error, h.pending_deltas, h.committed_sessions), (None, 0, 1));

    let conn = Connection::open(t.db()).unwrap();
    let today = Date::in_zone(now, Zone::Utc);
    for p in Period::ALL {
        let key = today.key(p).to_string();
        assert_eq!(usage(&conn, "user", "alice", p.as_str()), Some((key.clone(), 10_000, 70)), "{p}");
        assert_eq!(usage(&conn, "ip", "192.0.2.7", p.as_str()), Some((key.clone(), 10_000, 70)), "{p}");
        assert_eq!(usage(&conn, "anonymous", "", p.as_str()), Some((key.clone(), 40, 500_000)), "{p}");
        assert_eq!(usage(&conn, "ip", "2001:db8:0:1::/64", p.as_str()), Some((key, 40, 500_000)), "{p}");
    }
    let s: (String, String, String, i64, i64, i64) = conn
        .query_row("SELECT user, peer_ip, direction, rx_bytes, tx_bytes, lost_packets FROM sessions", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })
        .unwrap();
    assert_eq!(s, ("alice".into(), "192.0.2.7".into(), "receive".into(), 10_000, 70, 3));
    w.shutdown();
}

#[test]
fn deltas_coalesce_while_another_process_holds_the_lock() {
    capture_log();
    let t = TempDir::new();
    let store = Store::open_with(&t.db(), &quick()).unwrap();
    let w = Writer::start(store, &QuotaConfig::default(), fast_writer()).unwrap();
    let mut l = Ledger::new(QuotaConfig::default(), &[], SystemTime::now());
    let holder = Connection::open(t.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE; INSERT INTO settings VALUES('x', 'y');").unwrap();
    let start = Instant::now();
    let (mut n, mut worst, mut saw_error) = (0u64, Duration::ZERO, false);
    while start.elapsed() < Duration::from_secs(2) {
        for s in 0..100u64 {
            let t0 = Instant::now();
            w.record(&l.charge(Some(&format!("u{}", s % 10)), ip("192.0.2.1"), 3, 5, SystemTime::now()));
            worst = worst.max(t0.elapsed());
            n += 1;
        }
        saw_error |= w.health().and_then(|h| h.error).is_some_and(|e| e.contains("locked"));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(saw_error, "the writer reports the lock while it lasts");
    holder.execute_batch("ROLLBACK").unwrap();
    assert!(w.sync(Duration::from_secs(10)));
    let h = w.health().unwrap();
    assert_eq!(h.error, None, "recovered");
    assert_eq!(h.pending_deltas, 0);
    let conn = Connection::open(t.db()).unwrap();
    let (rx, tx): (i64, i64) = conn
        .query_row("SELECT sum(rx), sum(tx) FROM usage WHERE scope = 'user' AND period = 'day'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((rx as u64, tx as u64), (3 * n, 5 * n), "nothing lost");
    assert!(worst < Duration::from_millis(5), "charging and recording took {worst:?}");
    w.shutdown();
    let lines = log_lines(&t.db());
    assert_eq!(lines.iter().filter(|l| l.starts_with("ERROR")).count(), 1, "one error per episode: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("being saved to") && l.contains("again")), "{lines:?}");
}

#[test]
fn external_changes_reach_the_loop_within_two_seconds() {
    let t = TempDir::new();
    let mut cli = Store::open_with(&t.db(), &OpenOptions::default()).unwrap();
    cli.add_user("alice", "pw", false, true).unwrap();
    let store = Store::open(&t.db()).unwrap();
    let cfg = store.load_quota_config().unwrap();
    // Default intervals: what the daemon runs with.
    let mut l = Ledger::new(cfg.clone(), &[], SystemTime::now());
    let w = Writer::start(store, &cfg, WriterConfig::default()).unwrap();

    // The writer's own usage commits are not configuration changes.
    w.record(&l.charge(Some("alice"), ip("192.0.2.1"), 1, 1, SystemTime::now()));
    assert!(w.sync(Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(1200));
    assert!(w.poll_reload().is_none());

    let changed = Instant::now();
    cli.add_user("bob", "pw", true, true).unwrap();
    let mut limits = PartialLimits::default();
    limits.set(Period::Day, Dir::Total, Some(10_000));
    cli.set_limits(&LimitScope::User("alice".into()), &limits).unwrap();
    let r = loop {
        if let Some(r) = w.poll_reload() {
            break r;
        }
        assert!(changed.elapsed() < Duration::from_secs(2), "no reload within 2 s");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(r.users.get(b"bob").is_some_and(|u| u.md5_password.is_some()));
    assert_eq!(r.quota.user_limits("alice").get(Period::Day, Dir::Total), 10_000);

    // SIGHUP: an immediate reload even without a change.
    w.request_reload();
    let asked = Instant::now();
    while w.poll_reload().is_none() {
        assert!(asked.elapsed() < Duration::from_secs(1), "no reload after request_reload");
        std::thread::sleep(Duration::from_millis(10));
    }
    w.shutdown();
}

#[test]
fn shutdown_drains_everything_queued() {
    let t = TempDir::new();
    let store = Store::open(&t.db()).unwrap();
    let slow = WriterConfig { flush_interval: Duration::from_secs(3600), ..WriterConfig::default() };
    let w = Writer::start(store, &QuotaConfig::default(), slow).unwrap();
    let now = SystemTime::now();
    let mut l = Ledger::new(QuotaConfig::default(), &[], now);
    for i in 0..5000u64 {
        w.record(&l.charge(None, ip("198.51.100.1"), i, 1, now));
    }
    for _ in 0..50 {
        w.session(SessionRecord {
            user: None,
            peer_ip: ip("198.51.100.1"),
            proto: Protocol::Tcp,
            direction: Direction::Both,
            started: now,
            ended: now,
            rx_bytes: 1,
            tx_bytes: 2,
            lost_packets: 0,
            end_reason: "server-shutdown".into(),
        });
    }
    w.shutdown();
    let conn = Connection::open(t.db()).unwrap();
    let rx: i64 = conn
        .query_row("SELECT rx FROM usage WHERE scope = 'anonymous' AND period = 'month'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rx as u64, (0..5000u64).sum::<u64>());
    let n: i64 = conn.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 50);
}

#[test]
fn read_only_file_system_and_directory_give_clear_errors() {
    let t = TempDir::new();
    if is_root() {
        let Some(_mounted) = mount_tmpfs(&t.0, "size=4m") else {
            eprintln!("skipped: cannot mount a tmpfs here");
            return;
        };
        drop(Store::open(&t.db()).unwrap());
        assert!(remount(&t.0, "ro"));
        let e = Store::open(&t.db()).unwrap_err();
        assert!(matches!(e, StoreError::ReadOnly { .. }), "{e}");
        assert!(e.to_string().contains("read-only"), "{e}");
        let e = Store::open(&t.0.join("new.db")).unwrap_err();
        assert!(e.to_string().contains("read-only file system"), "{e}");
        let e = Store::open(&t.0.join("sub/new.db")).unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
    } else {
        let ro = t.0.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        let e = Store::open(&ro.join("btestd.db")).unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
        drop(Store::open(&t.db()).unwrap());
        std::fs::set_permissions(t.db(), std::fs::Permissions::from_mode(0o400)).unwrap();
        let e = Store::open(&t.db()).unwrap_err();
        assert!(e.to_string().contains("read-only") || e.to_string().contains("cannot open"), "{e}");
    }
}

#[test]
fn a_full_disk_keeps_usage_in_memory_until_space_returns() {
    capture_log();
    let t = TempDir::new();
    let Some(_mounted) = mount_tmpfs(&t.0, "size=1m") else {
        eprintln!("skipped: needs root to mount a small tmpfs");
        return;
    };
    let store = Store::open(&t.db()).unwrap();
    let w = Writer::start(store, &QuotaConfig::default(), fast_writer()).unwrap();
    // Fill the file system.
    let filler = t.0.join("filler");
    let _ = std::fs::write(&filler, vec![1u8; 2 << 20]);
    let now = SystemTime::now();
    let mut l = Ledger::new(QuotaConfig::default(), &[], now);
    let mut sent = 0u64;
    let start = Instant::now();
    let mut saw_full = false;
    while start.elapsed() < Duration::from_secs(10) && !saw_full {
        for i in 0..200u32 {
            w.record(&l.charge(Some(&format!("user{i}")), ip(&format!("10.0.{}.{}", i / 250, i % 250)), 1, 2, now));
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
        saw_full = w.health().and_then(|h| h.error).is_some_and(|e| e.contains("is full"));
    }
    assert!(saw_full, "a full disk is reported");
    std::fs::remove_file(&filler).unwrap();
    assert!(w.sync(Duration::from_secs(10)));
    assert_eq!(w.health().unwrap().error, None);
    let conn = Connection::open(t.db()).unwrap();
    let rx: i64 =
        conn.query_row("SELECT sum(rx) FROM usage WHERE scope = 'user' AND period = 'day'", [], |r| r.get(0)).unwrap();
    assert_eq!(rx as u64, sent);
    w.shutdown();
}

#[test]
fn a_database_deleted_while_running_is_recreated_with_its_users() {
    capture_log();
    let t = TempDir::new();
    let mut cli = Store::open_with(&t.db(), &OpenOptions::default()).unwrap();
    cli.add_user("alice", "pw", false, true).unwrap();
    cli.add_user("bob", "pw", true, false).unwrap();
    let mut l = PartialLimits::default();
    l.set(Period::Month, Dir::Rx, Some(5_000));
    cli.set_limits(&LimitScope::IpDefault, &l).unwrap();
    drop(cli);
    let store = Store::open(&t.db()).unwrap();
    let secret = store.server_secret().unwrap();
    let w = Writer::start(store, &QuotaConfig::default(), fast_writer()).unwrap();
    let mut l = Ledger::new(QuotaConfig::default(), &[], SystemTime::now());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", t.db().display()));
    }
    w.record(&l.charge(Some("alice"), ip("192.0.2.1"), 10, 20, SystemTime::now()));
    assert!(w.sync(Duration::from_secs(10)));
    assert!(t.db().exists(), "recreated");
    let again = Store::open_with(&t.db(), &OpenOptions::default()).unwrap();
    let users = again.load_users().unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.get(b"bob").is_some_and(|u| !u.enabled && u.md5_password.is_some()));
    assert_eq!(again.load_quota_config().unwrap().ip_default.get(Period::Month, Dir::Rx), 5_000);
    assert_eq!(again.server_secret().unwrap(), secret);
    let conn = Connection::open(t.db()).unwrap();
    assert!(usage(&conn, "user", "alice", "day").is_some_and(|(_, rx, tx)| (rx, tx) == (10, 20)));
    std::thread::sleep(Duration::from_millis(300));
    if let Some(r) = w.poll_reload() {
        assert_eq!(r.users.len(), 2, "a recreated file never locks users out");
    }
    w.shutdown();
}

#[test]
fn current_usage_is_loaded_for_the_ledger() {
    let t = TempDir::new();
    let store = Store::open(&t.db()).unwrap();
    let cfg = QuotaConfig { utc: true, ..QuotaConfig::default() };
    let w = Writer::start(store, &cfg, fast_writer()).unwrap();
    let now = SystemTime::now();
    let mut l = Ledger::new(cfg.clone(), &[], now);
    w.record(&l.charge(Some("alice"), ip("192.0.2.1"), 100, 200, now));
    w.record(&l.charge(Some("alice"), ip("192.0.2.1"), 100, 200, now - Duration::from_secs(40 * 86_400)));
    w.shutdown();
    let store = Store::open(&t.db()).unwrap();
    let rows = store.load_current_usage(&cfg, now).unwrap();
    let mut ledger = btestd::quota::Ledger::new(cfg, &rows, now);
    let alice = btestd::quota::Subject::User("alice".into());
    assert_eq!(ledger.used(&alice, Period::Day, now), [100, 200]);
    assert_eq!(ledger.used(&alice, Period::Month, now), [100, 200]);
}

#[test]
fn a_read_only_database_at_start_serves_from_memory_until_writable() {
    capture_log();
    let t = TempDir::new();
    let Some(_mounted) = mount_tmpfs(&t.0, "size=4m") else {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    };
    {
        let mut s = Store::open(&t.db()).unwrap();
        s.add_user("alice", "pw", false, true).unwrap();
    }
    assert!(remount(&t.0, "ro"));
    assert!(matches!(Store::open(&t.db()), Err(StoreError::ReadOnly { .. })));
    let ro = Store::open_read_only(&t.db()).unwrap();
    assert_eq!(ro.load_users().unwrap().len(), 1);
    let cfg = ro.load_quota_config().unwrap();
    let mut l = Ledger::new(cfg.clone(), &[], SystemTime::now());
    let w = Writer::start_degraded(ro, &cfg, fast_writer()).unwrap();
    w.record(&l.charge(Some("alice"), ip("192.0.2.1"), 5, 6, SystemTime::now()));
    let start = Instant::now();
    while !w.health().and_then(|h| h.error).is_some_and(|e| e.contains("read-only")) {
        assert!(start.elapsed() < Duration::from_secs(5), "the read-only database is reported");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(remount(&t.0, "rw"));
    assert!(w.sync(Duration::from_secs(10)));
    assert_eq!(w.health().unwrap().error, None);
    let conn = Connection::open(t.db()).unwrap();
    assert!(usage(&conn, "user", "alice", "month").is_some_and(|(_, rx, tx)| (rx, tx) == (5, 6)));
    w.shutdown();
    let lines = log_lines(&t.db());
    assert_eq!(lines.iter().filter(|l| l.starts_with("ERROR")).count(), 1, "{lines:?}");
}

#[test]
fn startup_loads_everything_the_daemon_needs() {
    let t = TempDir::new();
    {
        let mut s = Store::open(&t.db()).unwrap();
        s.add_user("alice", "pw", false, true).unwrap();
        let mut l = PartialLimits::default();
        l.set(Period::Day, Dir::Total, Some(1_000));
        s.set_limits(&LimitScope::User("alice".into()), &l).unwrap();
    }
    let mut first = btestd::store::Startup::open(&t.db(), fast_writer()).unwrap();
    assert!(!first.degraded);
    assert_eq!(first.users.len(), 1);
    first.writer.record(&first.ledger.charge(Some("alice"), ip("192.0.2.1"), 600, 400, SystemTime::now()));
    first.writer.shutdown();

    // A restart sees the stored usage: alice's day budget is spent.
    let mut again = btestd::store::Startup::open(&t.db(), fast_writer()).unwrap();
    assert_eq!(again.server_secret, first.server_secret);
    let e = again.ledger.check(Some("alice"), ip("192.0.2.9"), SystemTime::now()).unwrap_err();
    assert_eq!(e.to_string(), "user 'alice' day total budget 1.0 kB exhausted (used 1.0 kB)");
    again.writer.shutdown();
}
