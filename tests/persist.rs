//! The live database in RAM with a copy on flash (`--persist`): one file
//! for the daemon and the CLI, saved on interval, on user changes and at
//! stop, restored after a reboot emptied RAM, and what `kill -9` loses.

mod common;

use common::*;
use rusqlite::Connection;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const LOG_WAIT: Duration = Duration::from_secs(10);

/// RAM and flash sides of one test.
struct Paths {
    dir: TempDir,
    live: String,
    flash: String,
}

impl Paths {
    fn new() -> Paths {
        let dir = TempDir::new();
        let live = dir.path("ram/btestd.db");
        let flash = dir.path("flash/btestd.db");
        Paths { dir, live, flash }
    }

    /// `btestd serve` on the RAM file with its flash copy.
    fn serve(&self, extra: &[&str]) -> Server {
        let mut args = vec!["--db", &self.live, "--persist", &self.flash];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    /// Removes the RAM side, as a reboot does.
    fn reboot(&self) {
        for s in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{s}", self.live));
        }
    }
}

/// Runs `btestd <args>`; returns (exit code, stdout, stderr).
fn btestd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = btestd(args);
    assert_eq!(code, 0, "btestd {args:?}: {err}");
    out
}

/// Opens a copy of `db` (so reading never adds -wal/-shm files beside it).
fn read_copy(dir: &TempDir, db: &str) -> Connection {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let copy = dir.path(&format!("copy-{n}.db"));
    std::fs::copy(db, &copy).unwrap_or_else(|e| panic!("copy {db}: {e}"));
    for s in ["-wal", "-shm"] {
        if Path::new(&format!("{db}{s}")).exists() {
            std::fs::copy(format!("{db}{s}"), format!("{copy}{s}")).unwrap();
        }
    }
    Connection::open(copy).unwrap()
}

fn users(conn: &Connection) -> Vec<String> {
    let mut q = conn.prepare("SELECT name FROM users ORDER BY name").unwrap();
    q.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// Bytes charged to `user` today, both directions.
fn user_bytes(conn: &Connection, user: &str) -> i64 {
    conn.query_row(
        "SELECT coalesce(sum(rx + tx), 0) FROM usage WHERE scope = 'user' AND subject = ?1 AND period = 'day'",
        [user],
        |r| r.get(0),
    )
    .unwrap()
}

fn login_test(server: &Server, secs: &str) -> ClientRun {
    let run = client(
        server.addr,
        &["--user", "alice", "--password", "pw", "--duration", secs, "--remote-speed", "20M", "--direction", "both"],
    );
    assert_eq!(run.code, 0, "alice's test failed: {}", run.stderr);
    run
}

#[test]
fn a_user_added_by_the_cli_is_the_one_the_service_authenticates() {
    let p = Paths::new();
    // The CLI runs first, as README shows: it creates the RAM file and its flash copy.
    ok(&["user", "add", "alice", "--password", "pw", "--db", &p.live, "--persist", &p.flash]);
    assert_eq!(users(&read_copy(&p.dir, &p.flash)), ["alice"], "the CLI saved its change to flash");
    let mut server = p.serve(&[]);
    login_test(&server, "0.5");
    let wrong = client(server.addr, &["--user", "alice", "--password", "nope", "--duration", "0.5"]);
    assert_ne!(wrong.code, 0, "a wrong password is refused, so authentication is on");
    server.stop();
}

#[test]
fn usage_is_saved_on_the_interval_while_tests_run() {
    let p = Paths::new();
    ok(&["user", "add", "alice", "--password", "pw", "--db", &p.live, "--persist", &p.flash]);
    let mut server = p.serve(&["--persist-interval", "1"]);
    let run =
        client_spawn(server.addr, &["--user", "alice", "--password", "pw", "--duration", "3", "--remote-speed", "20M"]);
    server.wait_log("(on interval", LOG_WAIT);
    let saved = user_bytes(&read_copy(&p.dir, &p.flash), "alice");
    assert!(saved > 0, "the interval's copy holds usage");
    assert_eq!(client_wait(run).code, 0);
    server.stop();
}

#[test]
fn user_changes_reach_flash_at_once_with_or_without_the_cli_saving_them() {
    let p = Paths::new();
    let mut server = p.serve(&[]);
    // The CLI without --persist only changes the RAM file: the daemon notices and saves.
    ok(&["user", "add", "bob", "--password", "pw", "--db", &p.live]);
    server.wait_log("(users or limits changed", LOG_WAIT);
    assert_eq!(users(&read_copy(&p.dir, &p.flash)), ["bob"]);
    // With --persist the CLI saves before it returns.
    ok(&["user", "add", "carol", "--password", "pw", "--db", &p.live, "--persist", &p.flash]);
    assert_eq!(users(&read_copy(&p.dir, &p.flash)), ["bob", "carol"]);
    ok(&["quota", "set", "--user", "carol", "--day-total", "5G", "--db", &p.live, "--persist", &p.flash]);
    let limits: i64 = read_copy(&p.dir, &p.flash)
        .query_row("SELECT count(*) FROM limits WHERE subject = 'carol'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(limits, 1, "a quota change is saved too");
    server.stop();
}

#[test]
fn sigterm_saves_the_last_usage_and_a_reboot_restores_it() {
    let p = Paths::new();
    ok(&["user", "add", "alice", "--password", "pw", "--db", &p.live, "--persist", &p.flash]);
    let mut server = p.serve(&[]);
    login_test(&server, "1");
    let (status, log) = server.stop();
    assert!(status.success());
    assert!(log.iter().any(|l| l.contains("(at stop")), "{log:?}");
    let on_flash = user_bytes(&read_copy(&p.dir, &p.flash), "alice");
    assert!(on_flash > 0);
    assert_eq!(on_flash, user_bytes(&read_copy(&p.dir, &p.live), "alice"), "flash holds all of it");

    // After a reboot the CLI may run first: a change restores the RAM file
    // before it changes anything (and never saves an empty database over the copy).
    p.reboot();
    ok(&["user", "add", "bob", "--password", "pw", "--db", &p.live, "--persist", &p.flash]);
    assert_eq!(users(&read_copy(&p.dir, &p.live)), ["alice", "bob"]);
    assert_eq!(users(&read_copy(&p.dir, &p.flash)), ["alice", "bob"]);
    assert_eq!(user_bytes(&read_copy(&p.dir, &p.live), "alice"), on_flash);

    // Or the daemon does.
    p.reboot();
    let mut server = p.serve(&[]);
    server.wait_log("restored from", LOG_WAIT);
    login_test(&server, "0.5");
    server.stop();
    assert!(user_bytes(&read_copy(&p.dir, &p.flash), "alice") > on_flash, "counting went on from the copy");
}

#[test]
fn kill_9_and_lost_ram_lose_only_usage_since_the_last_save() {
    let p = Paths::new();
    ok(&["user", "add", "alice", "--password", "pw", "--db", &p.live, "--persist", &p.flash]);
    let server = p.serve(&["--persist-interval", "1"]);
    let run = client_spawn(
        server.addr,
        &["--user", "alice", "--password", "pw", "--duration", "10", "--remote-speed", "20M"],
    );
    server.wait_log_count("(on interval", 2, LOG_WAIT);
    server.signal(libc::SIGKILL);
    let _ = client_wait(run);
    let flash = read_copy(&p.dir, &p.flash);
    let quick: String = flash.query_row("PRAGMA quick_check", [], |r| r.get(0)).unwrap();
    assert_eq!(quick, "ok", "the copy is whole even after kill -9");
    let on_flash = user_bytes(&flash, "alice");
    let in_ram = user_bytes(&read_copy(&p.dir, &p.live), "alice");
    assert!(on_flash > 0 && on_flash <= in_ram, "flash {on_flash}, RAM {in_ram}");
    // At 20 Mbit/s one interval (1 s) plus one flush (1 s) is at most 5 MB.
    assert!(in_ram - on_flash <= 5_000_000, "lost {} bytes", in_ram - on_flash);

    p.reboot();
    let mut server = p.serve(&[]);
    server.wait_log("restored from", LOG_WAIT);
    server.stop();
    assert_eq!(user_bytes(&read_copy(&p.dir, &p.live), "alice"), on_flash, "restored exactly the last copy");
}

#[test]
fn the_copy_must_not_be_the_database_itself() {
    let p = Paths::new();
    let (code, _, err) = btestd(&["serve", "--listen", "127.0.0.1:0", "--db", &p.live, "--persist", &p.live]);
    assert_eq!(code, 1);
    assert!(err.contains("--persist names the database itself"), "{err}");
}

/// README's commands exactly, with no --db anywhere: the CLI and the
/// service meet at the built-in default path. Run in a private mount
/// namespace with a tmpfs over /var/lib (as OpenWrt has), so the host's
/// /var/lib is never touched; skipped where that is not possible.
#[test]
fn readme_commands_without_db_use_one_database() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let has_unshare = Command::new("unshare").arg("--version").stdout(Stdio::null()).status().is_ok();
    if !root || !has_unshare {
        eprintln!("skipped: needs root and unshare(1) for a private /var/lib");
        return;
    }
    let script = "mount -t tmpfs -o mode=0755 btestd-test /var/lib || exit 97
        \"$0\" user add alice --password pw >&2 || exit 98
        exec \"$0\" serve --listen 127.0.0.1:0 --max-duration 30";
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", script, BIN]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut seen = Vec::new();
    let addr = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(a) = l.rsplit("listening on ").next().filter(|_| l.contains("listening on ")) {
                    break a.trim().parse::<std::net::SocketAddr>().unwrap();
                }
                seen.push(l);
            }
            _ => {
                let status = wait_bounded(&mut child, LOG_WAIT);
                if status.code() == Some(97) {
                    eprintln!("skipped: cannot mount a tmpfs here");
                    return;
                }
                panic!("server did not start ({status}): {seen:?}");
            }
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    assert!(seen.iter().any(|l| l.contains("user 'alice' added")), "{seen:?}");
    assert!(seen.iter().any(|l| l.contains("/var/lib/btestd/btestd.db: 1 users")), "{seen:?}");
    let run = client(addr, &["--user", "alice", "--password", "pw", "--duration", "0.5"]);
    // SAFETY: signals only the child we started (unshare exec'd into sh, sh into btestd).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_bounded(&mut child, LOG_WAIT);
    assert_eq!(run.code, 0, "alice, added without --db, logs in to the service started without --db: {}", run.stderr);
}

/// A reload that finds nothing new writes nothing to flash; a live file
/// deleted while the daemon runs comes back from the flash copy, usage
/// history included, instead of being rebuilt empty and saved over it.
#[test]
fn a_plain_reload_leaves_flash_alone_and_a_lost_live_file_comes_back_from_it() {
    let p = Paths::new();
    ok(&["user", "add", "alice", "--password", "pw", "--db", &p.live, "--persist", &p.flash]);
    let mut server = p.serve(&[]);
    login_test(&server, "1");
    server.stop();
    let on_flash = user_bytes(&read_copy(&p.dir, &p.flash), "alice");
    assert!(on_flash > 0);

    let server = p.serve(&[]);
    server.signal(libc::SIGHUP);
    server.wait_log("reloaded 1 users", LOG_WAIT);
    p.reboot();
    server.signal(libc::SIGHUP);
    server.wait_log("restored from", LOG_WAIT);
    let mut server = server;
    let (_, log) = server.stop();
    let saves: Vec<&String> = log.iter().filter(|l| l.contains("database saved to")).collect();
    assert!(saves.iter().all(|l| !l.contains("users or limits changed")), "{saves:#?}");
    assert_eq!(user_bytes(&read_copy(&p.dir, &p.flash), "alice"), on_flash, "the history survived");
}
