//! Store writer throughput and the event loop's stalls while it commits:
//! `cargo bench --bench store`.
//!
//! 1. Throughput: one thread records charges (10,000 distinct client
//!    addresses and 1,000 users, classified by a ledger beforehand) or
//!    session records as fast as it can for a few seconds;
//!    the writer commits every 100 ms or 1 s. Reports what was committed
//!    per second, including the final drain.
//! 2. Loop stall: a thread behaves like the event loop with 1,000 running
//!    sessions — every millisecond one session is charged in the ledger and
//!    the charge recorded (each session once a second), and one session ends
//!    every 10 ms — while the writer commits with `synchronous=FULL` on
//!    tmpfs (/dev/shm) and on a real disk. Reports the worst and p99 time
//!    of one session's per-second accounting. Target: worst under 5 ms.
//!
//! `BTESTD_BENCH_SECS` sets the length of each run (default 5),
//! `BTESTD_BENCH_ONLY=stall|throughput` runs one part, `BTESTD_BENCH_DISK_DIR`
//! the real-disk directory (default the system temp dir).

use btestd::proto::{Direction, Protocol};
use btestd::quota::{Dir, Ledger, Limits, Period, QuotaConfig};
use btestd::store::{OpenOptions, SessionRecord, Store, Writer, WriterConfig};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

fn secs() -> Duration {
    Duration::from_secs(std::env::var("BTESTD_BENCH_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(5))
}

/// A fresh database file under `dir`, removed (with its WAL) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(dir: &Path, name: &str) -> TempDb {
        let p = dir.join(format!("btestd-bench-{}-{name}.db", std::process::id()));
        let t = TempDb(p);
        t.remove();
        t
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

fn writer(db: &Path, flush: Duration, full_sync: bool, session_cap: usize) -> Writer {
    let opts = OpenOptions { synchronous_full: full_sync, ..OpenOptions::default() };
    let store = Store::open_with(db, &opts).expect("open bench database");
    let config = WriterConfig { flush_interval: flush, session_cap, ..WriterConfig::default() };
    Writer::start(store, &QuotaConfig::default(), config).expect("start writer")
}

fn session_ip(i: u32) -> IpAddr {
    IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8])
}

fn record(i: u32, now: SystemTime) -> SessionRecord {
    SessionRecord {
        user: Some(format!("user{}", i % 200)),
        peer_ip: session_ip(i),
        proto: Protocol::Tcp,
        direction: Direction::Both,
        started: now - Duration::from_secs(10),
        ended: now,
        rx_bytes: 1_250_000_000,
        tx_bytes: 1_250_000_000,
        lost_packets: 0,
        end_reason: "peer-closed".into(),
    }
}

fn throughput(dir: &Path, flush: Duration) {
    let run = secs();
    // Deltas: 10,000 distinct addresses and 1,000 users, classified once
    // so that only the writer's side is measured.
    let db = TempDb::new(dir, "deltas");
    let w = writer(&db.0, flush, false, 10_000);
    let mut ledger = Ledger::new(QuotaConfig::default(), &[], SystemTime::now());
    let charges: Vec<_> = (0..10_000u32)
        .map(|i| ledger.charge(Some(&format!("user{}", i % 1000)), session_ip(i), 1500, 64, SystemTime::now()))
        .collect();
    let start = Instant::now();
    let mut pushed = 0u64;
    while start.elapsed() < run {
        for _ in 0..1000 {
            w.record(&charges[(pushed % 10_000) as usize]);
            pushed += 1;
        }
        // Leave the writer's core alone now and then, as a real loop does.
        std::thread::sleep(Duration::from_micros(200));
    }
    let h0 = w.health().unwrap_or_default();
    w.shutdown();
    println!(
        "  deltas   flush {:>5} ms: recorded {:>9.0} charges/s over 11,000 subjects; committed {} coalesced entries \
         (x3 period rows) in {} commits, {:.0} entries/s; slowest commit {:.1} ms",
        flush.as_millis(),
        pushed as f64 / run.as_secs_f64(),
        h0.committed_deltas,
        h0.commits,
        h0.committed_deltas as f64 / run.as_secs_f64(),
        h0.max_commit_time.as_secs_f64() * 1e3
    );

    // Session records, not folded: how many rows a second SQLite takes.
    // A fixed count (about 75 MB queued at worst) keeps memory in check.
    const RECORDS: u32 = 500_000;
    let db = TempDb::new(dir, "sessions");
    let w = writer(&db.0, flush, false, usize::MAX);
    let start = Instant::now();
    let now = SystemTime::now();
    for i in 0..RECORDS {
        w.session(record(i, now));
        if i % 1000 == 999 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let pushed_in = start.elapsed().as_secs_f64();
    w.shutdown();
    let total = start.elapsed().as_secs_f64();
    let rows: i64 = rusqlite::Connection::open(&db.0)
        .and_then(|c| c.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0)))
        .unwrap_or(-1);
    println!(
        "  sessions flush {:>5} ms: {rows} records pushed in {pushed_in:.2} s, all committed after {total:.2} s: \
         {:.0} rows/s",
        flush.as_millis(),
        rows as f64 / total
    );
}

/// CPU time of the calling thread: a call whose wall time is far above its
/// CPU time was descheduled (or waited), not busy.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The event loop's accounting for 1,000 sessions while the writer commits
/// (`dir` None: no writer at all, to show the machine's scheduling noise).
fn stall(label: &str, dir: Option<&Path>, full_sync: bool, flush: Duration) {
    let db = dir.map(|d| TempDb::new(d, "stall"));
    let w = db.as_ref().map(|db| writer(&db.0, flush, full_sync, 10_000));
    let mut cfg = QuotaConfig::default();
    let mut l = Limits::UNLIMITED;
    l.set(Period::Month, Dir::Total, u64::MAX / 2);
    cfg.ip_default = l;
    for u in 0..200 {
        cfg.users.insert(format!("user{u}"), l);
    }
    let mut ledger = Ledger::new(cfg, &[], SystemTime::now());
    let users: Vec<String> = (0..200).map(|u| format!("user{u}")).collect();
    let sessions = 1000u32;
    let run = secs();
    let start = Instant::now();
    let mut times: Vec<(Duration, Duration)> = Vec::with_capacity(run.as_millis() as usize + 16);
    let mut tick = 0u32;
    let mut next = Instant::now();
    while start.elapsed() < run {
        next += Duration::from_millis(1);
        let now_wall = SystemTime::now();
        let s = tick % sessions;
        let user = users[(s % 200) as usize].as_str();
        let ip = session_ip(s);
        let (t0, c0) = (Instant::now(), thread_cpu());
        // One session's second: 1 Gbit/s each way.
        let charge = ledger.charge(Some(user), ip, 125_000_000, 125_000_000, now_wall);
        if let Some(w) = &w {
            w.record(&charge);
            if tick % 10 == 0 {
                w.session(record(s, now_wall));
            }
        }
        times.push((t0.elapsed(), thread_cpu().saturating_sub(c0)));
        tick += 1;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let h = w.as_ref().and_then(Writer::health).unwrap_or_default();
    if let Some(w) = w {
        w.shutdown();
    }
    let max_cpu = times.iter().map(|t| t.1).max().unwrap_or_default();
    times.sort_unstable();
    let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize].0;
    let (worst, worst_cpu) = times.last().copied().unwrap_or_default();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "  {label:<44} calls {:>6}  p50 {:>5.1} us  p99 {:>6.1} us  max {:>7.1} us (its CPU {:.1} us; max CPU {:.1} us)  \
         | {} commits, slowest {:.1} ms  {}",
        times.len(),
        us(p(0.5)),
        us(p(0.99)),
        us(worst),
        us(worst_cpu),
        us(max_cpu),
        h.commits,
        h.max_commit_time.as_secs_f64() * 1e3,
        if worst < Duration::from_millis(5) { "OK (< 5 ms)" } else { "OVER 5 ms" }
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: stay short there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("store bench: run with `cargo bench --bench store`");
        return;
    }
    let shm = Path::new("/dev/shm");
    let disk = std::env::var_os("BTESTD_BENCH_DISK_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let only = std::env::var("BTESTD_BENCH_ONLY").unwrap_or_default();
    if only != "stall" {
        println!("writer throughput (file in {}):", disk.display());
        for flush in [Duration::from_millis(100), Duration::from_secs(1)] {
            throughput(&disk, flush);
        }
    }
    if only == "throughput" {
        return;
    }
    println!("event-loop stall per session-second (ledger charge + record + 1 in 10 a session record):");
    let cases: [(&str, &Path, bool); 3] = [
        ("tmpfs /dev/shm, synchronous=FULL", shm, true),
        ("disk, synchronous=FULL", &disk, true),
        ("disk, synchronous=NORMAL", &disk, false),
    ];
    stall("no writer (scheduling noise floor)", None, false, Duration::from_secs(1));
    for (label, dir, full) in cases {
        if dir.is_dir() {
            stall(&format!("{label}, flush 1 s"), Some(dir), full, Duration::from_secs(1));
        }
    }
    if disk.is_dir() {
        stall("disk, synchronous=FULL, flush 100 ms", Some(&disk), true, Duration::from_millis(100));
    }
}
