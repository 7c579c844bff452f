//! `--format json` of the listing commands as a GUI (LuCI's rpcd, OPNsense's
//! configd) runs them: no terminal, one JSON object per command, bytes as
//! integers, times in RFC 3339 UTC; read back with a real JSON parser.

mod common;

use common::{BIN, Server, TempDir, client};
use serde_json::Value;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Runs `btestd ARGS --db DB` with `stdin` piped in, in a new session
/// without a controlling terminal, as a GUI backend would.
fn run(db: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).args(["--db", db]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe and changes only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
}

fn ok(db: &str, args: &[&str]) -> String {
    let (code, out, err) = run(db, args, "");
    assert_eq!(code, 0, "{args:?}: {err}");
    out
}

fn json(db: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let out = ok(db, &a);
    assert_eq!(out.matches('\n').count(), 1, "one document on one line: {out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{a:?}: {e}: {out}"));
    assert!(v.is_object(), "a top-level object (ubus wants one): {out}");
    v
}

fn is_utc_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    let b = s.as_bytes();
    s.len() == 20 && b[4] == b'-' && b[10] == b'T' && b[13] == b':' && s.ends_with('Z')
}

fn items<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key].as_array().unwrap_or_else(|| panic!("no array {key} in {v}"))
}

#[test]
fn a_user_is_added_from_a_pipe_without_a_terminal_and_logs_in() {
    let dir = TempDir::new();
    let db = dir.path("btestd.db");
    let (code, out, err) = run(&db, &["user", "add", "ann", "--password-file", "-"], "pass word\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("user 'ann' added"), "{out}");
    let s = Server::start(&["--db", &db]);
    let good = client(s.addr, &["--user", "ann", "--password", "pass word", "--duration", "1"]);
    assert_eq!(good.code, 0, "the piped password is the one stored: {}", good.stderr);
    let bad = client(s.addr, &["--user", "ann", "--password", "pass word\n", "--duration", "1"]);
    assert_ne!(bad.code, 0, "the newline is not part of it");
    let (code, _, err) = run(&db, &["user", "add", "bob", "--password-file", "-"], "");
    assert_eq!(code, 1, "an empty pipe is no password: {err}");
    assert!(err.contains("standard input ended before a password line"), "{err}");
}

#[test]
fn every_list_is_one_json_document_with_the_documented_fields() {
    let dir = TempDir::new();
    let db = dir.path("btestd.db");
    let empty = dir.path("empty.db");
    ok(&empty, &["quota", "config", "--retention-days", "30"]);
    assert_eq!(items(&json(&empty, &["user", "list"]), "users").len(), 0);
    assert_eq!(items(&json(&empty, &["usage"]), "usage").len(), 0);
    assert_eq!(items(&json(&empty, &["usage", "--sessions"]), "sessions").len(), 0);
    assert_eq!(items(&json(&empty, &["quota", "list"]), "budgets").len(), 0);

    let pwfile = dir.path("pw");
    std::fs::write(&pwfile, "secret\n").unwrap();
    run(&db, &["user", "add", "ann \"the\" admin", "--password-file", "-"], "pw\n");
    ok(&db, &["user", "add", "ann", "--password-file", &pwfile]);
    ok(&db, &["user", "add", "bob", "--password-file", &pwfile, "--md5", "--disabled"]);
    ok(&db, &["user", "set", "ann", "--day-total", "10G"]);
    ok(&db, &["quota", "set", "--ip-default", "--month-rx", "1G"]);
    ok(&db, &["quota", "set", "--anonymous", "--day-total", "5M"]);
    ok(&db, &["quota", "set", "--ip", "10.0.0.0/8", "--week-tx", "2G"]);

    let mut s = Server::start(&["--db", &db]);
    let run = client(
        s.addr,
        &[
            "--user",
            "ann",
            "--password",
            "secret",
            "--direction",
            "both",
            "--duration",
            "2",
            "--speed",
            "8M",
            "--remote-speed",
            "4M",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    s.wait_log("session 1 ended:", std::time::Duration::from_secs(5));
    s.stop();

    let users = json(&db, &["user", "list"]);
    let users = items(&users, "users");
    let find = |n: &str| users.iter().find(|u| u["name"] == n).unwrap_or_else(|| panic!("{n} in {users:?}")).clone();
    let ann = find("ann");
    assert_eq!((ann["enabled"].as_bool(), ann["md5"].as_bool()), (Some(true), Some(false)));
    assert!(is_utc_time(&ann["created"]), "{ann}");
    assert_eq!(ann["day_total"].as_u64(), Some(10_000_000_000), "{ann}");
    assert_eq!((ann["day_rx"].as_u64(), ann["month_total"].as_u64()), (Some(0), Some(0)), "0 = unlimited");
    let bob = find("bob");
    assert_eq!((bob["enabled"].as_bool(), bob["md5"].as_bool()), (Some(false), Some(true)));
    assert_eq!(bob.as_object().unwrap().len(), 4 + 9, "name, enabled, md5, created and nine budget cells");
    find("ann \"the\" admin");
    let text = ok(&db, &["user", "list", "--format", "json"]);
    assert!(!text.contains("secret") && !text.contains("\"pw\""), "no secrets: {text}");

    let quotas = json(&db, &["quota", "list"]);
    let budgets = items(&quotas, "budgets");
    let has = |scope: &str, subject: Value, period: &str, dir: &str, bytes: u64| {
        let want =
            serde_json::json!({"scope": scope, "subject": subject, "period": period, "dir": dir, "bytes": bytes});
        assert!(budgets.contains(&want), "{want} in {budgets:?}");
    };
    has("ip", "default".into(), "month", "rx", 1_000_000_000);
    has("anonymous", Value::Null, "day", "total", 5_000_000);
    has("ip", "10.0.0.0/8".into(), "week", "tx", 2_000_000_000);
    has("user", "ann".into(), "day", "total", 10_000_000_000);

    let usage = json(&db, &["usage"]);
    let rows = items(&usage, "usage");
    let row = |scope: &str, period: &str| {
        rows.iter().find(|r| r["scope"] == scope && r["period"] == period).unwrap_or_else(|| panic!("{rows:?}")).clone()
    };
    let day = row("user", "day");
    assert_eq!(day["subject"], "ann");
    let (rx, tx) = (day["rx_bytes"].as_u64().unwrap(), day["tx_bytes"].as_u64().unwrap());
    assert!(rx > 1_000_000 && tx > 500_000, "{day}");
    assert_eq!(day["total_bytes"].as_u64(), Some(rx + tx));
    assert_eq!(day["limit_dir"], "total");
    assert_eq!(day["limit_bytes"].as_u64(), Some(10_000_000_000));
    assert_eq!(day["remaining_bytes"].as_u64(), Some(10_000_000_000 - rx - tx));
    let week = row("user", "week");
    assert!(week["limit_dir"].is_null() && week["remaining_bytes"].is_null(), "no weekly budget: {week}");
    assert_eq!(week["limit_bytes"], 0);
    let ip_month = row("ip", "month");
    assert_eq!(ip_month["subject"], "127.0.0.1");
    assert_eq!(ip_month["rx_bytes"].as_u64(), Some(rx), "the same bytes, counted for the address");
    assert_eq!(ip_month["remaining_bytes"].as_u64(), Some(1_000_000_000 - rx));
    assert!(ip_month["period_key"].as_str().unwrap().len() >= 7);
    let only_ann = json(&db, &["usage", "--user", "ann", "--period", "week"]);
    assert_eq!(items(&only_ann, "usage").len(), 1, "{only_ann}");

    let sessions = json(&db, &["usage", "--sessions"]);
    let sessions = items(&sessions, "sessions");
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let t = &sessions[0];
    assert_eq!(
        (t["user"].as_str(), t["peer_ip"].as_str(), t["proto"].as_str()),
        (Some("ann"), Some("127.0.0.1"), Some("tcp"))
    );
    assert_eq!(t["direction"], "both");
    assert_eq!((t["rx_bytes"].as_u64(), t["tx_bytes"].as_u64()), (Some(rx), Some(tx)), "{t}");
    assert!(is_utc_time(&t["started"]) && is_utc_time(&t["ended"]), "{t}");
    assert!(t["started"].as_str() < t["ended"].as_str(), "{t}");
    assert_eq!(t["end_reason"], "peer-closed");
    assert_eq!(t["sessions"], 1, "one test, not a merged row");
    assert!(t["id"].as_i64().unwrap() > 0);

    let (code, _, err) = self::run(&db, &["usage", "--format", "xml"], "");
    assert_eq!(code, 1);
    assert!(err.contains("use text, csv or json"), "{err}");
}
