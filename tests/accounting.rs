//! Usage accounting and quotas through the real interfaces: a server with
//! a database, `btestd client` processes and the `btestd user/quota/usage`
//! commands.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// Persisted (rx, tx) of today's counter for 127.0.0.1.
fn persisted_today(db: &str) -> (u64, u64) {
    let (code, out, err) = admin(db, &["usage", "--ip", "127.0.0.1", "--period", "day", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .skip(1)
        .find(|l| l.starts_with("ip,"))
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[4].parse().unwrap(), f[5].parse().unwrap())
        })
        .unwrap_or((0, 0))
}

fn many_clients(server: &Server, n: usize, args: &[&str]) -> Vec<std::process::Child> {
    (0..n).map(|_| client_spawn(server.addr, args)).collect()
}

/// 50 tests at 1 Mbit/s each way for 20 s, all started by the time this returns.
fn fifty_running_tests(server: &Server) -> Vec<std::process::Child> {
    let clients =
        many_clients(server, 50, &["--direction", "both", "--duration", "20", "--speed", "1M", "--remote-speed", "1M"]);
    server.wait_log_count("session ", 50, LOG_WAIT);
    clients
}

#[test]
fn sigterm_persists_what_clients_measured() {
    let mut server = Server::start(&BUSY);
    let db = server.db();
    let clients = fifty_running_tests(&server);
    std::thread::sleep(Duration::from_millis(2500));
    let (status, _) = server.stop();
    assert!(status.success());
    let runs: Vec<ClientRun> = clients.into_iter().map(client_wait).collect();
    assert!(runs.iter().all(|c| c.code == 2), "{:?}", runs.iter().find(|c| c.code != 2));
    let (client_tx, client_rx) = runs.iter().fold((0, 0), |(t, r), c| (t + c.tx_bytes, r + c.rx_bytes));
    let (rx, tx) = persisted_today(&db);
    let measured = client_tx + client_rx;
    let saved = rx + tx;
    assert!(measured > 20_000_000, "{measured}");
    assert!(
        saved.abs_diff(measured) * 100 <= measured,
        "saved {saved} vs measured {measured} (rx {rx}/{client_tx}, tx {tx}/{client_rx})"
    );
    // One session record per test.
    let (_, sessions, _) = admin(&db, &["usage", "--sessions", "--limit", "100", "--format", "csv"]);
    assert_eq!(sessions.lines().filter(|l| l.contains("server-shutdown")).count(), 50, "{sessions}");
}

#[test]
fn kill_9_loses_at_most_the_last_flush() {
    let server = Server::start(&BUSY);
    let db = server.db();
    let clients = fifty_running_tests(&server);
    std::thread::sleep(Duration::from_millis(3000));
    server.signal(libc::SIGKILL);
    let runs: Vec<ClientRun> = clients.into_iter().map(client_wait).collect();
    let measured: u64 = runs.iter().map(|c| c.tx_bytes + c.rx_bytes).sum();
    let (rx, tx) = persisted_today(&db);
    let saved = rx + tx;
    // 50 tests x 2 Mbit/s = 12.5 MB/s; a crash may lose the last charge
    // period (0.25 s) plus one flush interval (1 s) of it.
    let allowance = 12_500_000 * 125 / 100;
    assert!(saved <= measured + measured / 50, "saved {saved} more than measured {measured}");
    assert!(saved + allowance >= measured, "saved {saved}, measured {measured}: lost more than one flush");
    assert!(saved > 0);
}

#[test]
fn user_changes_during_200_tests_never_hit_a_locked_database() {
    let dir = TempDir::new();
    let db = dir.path("d.db");
    assert_eq!(admin(&db, &["user", "add", "alice", "--password", "pw"]).0, 0);
    let mut args: Vec<&str> = BUSY.to_vec();
    args.extend_from_slice(&["--db", &db]);
    let server = Server::start(&args);
    let clients = many_clients(
        &server,
        200,
        &[
            "--user",
            "alice",
            "--password",
            "pw",
            "--direction",
            "both",
            "--duration",
            "12",
            "--speed",
            "200k",
            "--remote-speed",
            "200k",
        ],
    );
    server.wait_log_count("session ", 200, Duration::from_secs(30));
    let t0 = Instant::now();
    let mut failures = Vec::new();
    for i in 0..1000 {
        let amount = format!("{}G", 100 + i);
        let (code, _, err) = admin(&db, &["user", "set", "alice", "--month-total", &amount]);
        if code != 0 || err.to_lowercase().contains("locked") {
            failures.push(err);
        }
    }
    let took = t0.elapsed();
    let runs: Vec<ClientRun> = clients.into_iter().map(client_wait).collect();
    assert!(failures.is_empty(), "{} of 1000 `user set` failed: {:?}", failures.len(), failures.first());
    for (i, c) in runs.iter().enumerate() {
        assert!(c.code == 0, "client {i}: {c:?}");
    }
    let log = server.log().join("\n");
    assert!(!log.to_lowercase().contains("locked"), "{log}");
    assert!(!log.contains("[ERROR]"), "{log}");
    eprintln!("1000 user set took {took:?}");
}

#[test]
fn budgets_refuse_new_tests_and_cut_running_ones_within_a_second() {
    let dir = TempDir::new();
    let db = dir.path("d.db");
    assert_eq!(admin(&db, &["quota", "set", "--ip-default", "--day-total", "3MB"]).0, 0);
    let mut args = vec!["--db", db.as_str()];
    args.push("-v");
    let server = Server::start(&args);
    // 8 Mbit/s = 1 MB/s: the 3 MB budget runs out after about 3 s.
    let t0 = Instant::now();
    let c = client(server.addr, &["--direction", "receive", "--duration", "20", "--remote-speed", "8M"]);
    let took = t0.elapsed();
    assert_eq!(c.code, 2, "the server ends the test: {c:?}");
    let end = server.session_end(1, LOG_WAIT);
    assert!(end["reason"].starts_with("quota-exhausted(ip-day-total"), "{end:?}");
    let sent = num(&end, "tx_bytes");
    // Cut within a second of the budget running out: at most 1 MB over.
    assert!((3_000_000..4_000_000).contains(&sent), "sent {sent} in {took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    server.wait_log("budget", LOG_WAIT);

    // The next test is refused at the start with the failure reply.
    let (mut r, rep) = Raw::command(server.addr, &tcp_cmd(2, true, 0, 0));
    assert_eq!(rep, [0, 0, 0, 0]);
    assert!(r.read_to_close(Duration::from_secs(5)).1);
    let refused = server.wait_log("test refused", LOG_WAIT);
    assert!(refused.contains("day total budget"), "{refused}");

    // Raising the budget from the CLI applies without a restart.
    assert_eq!(admin(&db, &["quota", "set", "--ip-default", "--day-total", "1GB"]).0, 0);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let c = client(server.addr, &["--direction", "receive", "--duration", "1", "--remote-speed", "1M"]);
        if c.code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "new budget not applied within 2 s: {c:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn users_added_and_disabled_from_the_cli_apply_within_two_seconds() {
    let server = Server::start(&[]);
    let db = server.db();
    // No users yet: tests are anonymous.
    let c = client(server.addr, &["--duration", "1", "--remote-speed", "1M"]);
    assert_eq!(c.code, 0, "{c:?}");

    assert_eq!(admin(&db, &["user", "add", "bob", "--password", "secret"]).0, 0);
    let t0 = Instant::now();
    loop {
        let c = client(server.addr, &["--duration", "0.5", "--remote-speed", "1M"]);
        if c.code == 1 && c.stderr.contains("requires authentication") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_millis(2500), "authentication not required after 2 s: {c:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let c =
        client(server.addr, &["--user", "bob", "--password", "secret", "--duration", "0.5", "--remote-speed", "1M"]);
    assert_eq!(c.code, 0, "{c:?}");

    assert_eq!(admin(&db, &["user", "set", "bob", "--disable"]).0, 0);
    server.signal(libc::SIGHUP);
    let t0 = Instant::now();
    loop {
        let c = client(
            server.addr,
            &["--user", "bob", "--password", "secret", "--duration", "0.5", "--remote-speed", "1M"],
        );
        if c.code == 1 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_millis(2500), "disabled user still logs in: {c:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.wait_log("authentication failed for user 'bob': user is disabled", LOG_WAIT);
    server.wait_log("SIGHUP received: reloading", LOG_WAIT);
}

#[test]
fn corrupt_database_refuses_to_start_with_a_clear_message() {
    let dir = TempDir::new();
    let db = dir.path("bad.db");
    std::fs::write(&db, vec![0x42u8; 8192]).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &db])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&db) && (err.contains("corrupt") || err.contains("not a btestd database")), "{err}");
}
