//! Cross-build probe (see Cargo.toml): touches every dependency of btestd the
//! way the daemon will, and fails loudly if the target's build gets any wrong.

use argh::FromArgs;
use rusqlite::Connection;
use std::error::Error;
use std::path::Path;
use std::time::Duration;

/// Exercise btestd's dependencies on this target.
#[derive(FromArgs)]
struct Args {
    /// fail unless SQLite was built with .cargo/config.toml's LIBSQLITE3_FLAGS
    #[argh(switch)]
    expect_slim: bool,
    /// sqlite database file to create (WAL mode); removed first if present
    #[argh(positional)]
    db: std::path::PathBuf,
}

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() {
    let args: Args = argh::from_env();
    let _ = simplelog::WriteLogger::init(
        log::LevelFilter::Info,
        simplelog::Config::default(),
        std::io::stderr(),
    );
    let checks: [(&str, &dyn Fn() -> Result<String>); 4] = [
        ("sqlite", &|| sqlite(&args.db, args.expect_slim)),
        ("mio", &mio_loopback),
        ("digests", &digests),
        ("cpu", &cpu),
    ];
    let mut failed = false;
    for (name, check) in checks {
        match check() {
            Ok(note) => log::info!("{name}: ok ({note})"),
            Err(e) => {
                log::error!("{name}: FAILED: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
    println!("probe ok");
}

fn sqlite(path: &Path, expect_slim: bool) -> Result<String> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    let mut db = Connection::open(path)?;
    db.busy_timeout(Duration::from_secs(5))?;
    let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if mode != "wal" {
        return Err(format!("journal_mode is {mode}, not wal").into());
    }
    db.execute_batch(
        "CREATE TABLE usage (user TEXT NOT NULL, period INTEGER NOT NULL,
                             bytes INTEGER NOT NULL, PRIMARY KEY (user, period)) STRICT;",
    )?;
    const UPSERT: &str = "INSERT INTO usage (user, period, bytes) VALUES (?1, ?2, ?3)
                          ON CONFLICT (user, period) DO UPDATE SET bytes = bytes + excluded.bytes";
    let version = |db: &Connection| -> rusqlite::Result<i64> {
        db.query_row("PRAGMA data_version", [], |r| r.get(0))
    };
    let before = version(&db)?;
    let tx = db.transaction()?;
    for _ in 0..3 {
        // Past 2^32, so a byte-order or width slip in the C build shows.
        tx.execute(UPSERT, ("alice", 202_611_i64, 5_000_000_000_i64))?;
    }
    tx.commit()?;
    // data_version moves only for commits made through other connections.
    let other = Connection::open(path)?;
    other.busy_timeout(Duration::from_secs(5))?;
    other.execute(UPSERT, ("alice", 202_611_i64, 1_i64))?;
    let after = version(&db)?;
    if after == before {
        return Err("PRAGMA data_version did not move after another connection's commit".into());
    }
    let bytes: i64 = db.query_row(
        "SELECT bytes FROM usage WHERE user = 'alice' AND period = 202611",
        [],
        |r| r.get(0),
    )?;
    if bytes != 15_000_000_001 {
        return Err(format!("upserted total is {bytes}, expected 15000000001").into());
    }
    let options: Vec<String> = db
        .prepare("PRAGMA compile_options")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let slim = options.iter().any(|o| o == "OMIT_LOAD_EXTENSION")
        && !options.iter().any(|o| o.starts_with("ENABLE_FTS"));
    if expect_slim && !slim {
        return Err(format!("SQLite built without LIBSQLITE3_FLAGS: {options:?}").into());
    }
    Ok(format!(
        "SQLite {}, slim build: {slim}",
        rusqlite::version()
    ))
}

fn mio_loopback() -> Result<String> {
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new()?;
    let mut listener = mio::net::TcpListener::bind("127.0.0.1:0".parse()?)?;
    let addr = listener.local_addr()?;
    poll.registry()
        .register(&mut listener, Token(0), Interest::READABLE)?;
    let _client = std::net::TcpStream::connect(addr)?;
    let mut events = Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::from_secs(5)))?;
    if events.is_empty() {
        return Err("no readiness event for a pending connection".into());
    }
    let (_stream, peer) = listener.accept()?;
    Ok(format!("accepted {peer} on {addr}"))
}

fn digests() -> Result<String> {
    use md5::Digest as _;
    let md5 = md5::Md5::digest(b"abc");
    let sha = sha2::Sha256::digest(b"abc");
    let md5_abc = hex("900150983cd24fb0d6963f7d28e17f72");
    let sha_abc = hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    if md5[..] != md5_abc[..] || sha[..] != sha_abc[..] {
        return Err("MD5/SHA-256 of \"abc\" differ from the published values".into());
    }
    Ok("MD5 and SHA-256 match".into())
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

fn cpu() -> Result<String> {
    let mut sampler = btestd::cpu::CpuSampler::new();
    if sampler.sample().is_some() {
        return Err("first sample has no baseline, yet gave a figure".into());
    }
    std::thread::sleep(Duration::from_millis(300));
    match sampler.sample() {
        Some(p) if p > 100 => Err(format!("{p}% busy").into()),
        Some(p) => Ok(format!("{p}% busy over 300 ms")),
        None => Ok("no figure on this OS".into()),
    }
}
