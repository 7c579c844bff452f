//! Quota periods in local time follow the TZ environment variable, as
//! btestd reads it itself (a static musl build gets no help from the C
//! library): a POSIX TZ string with and without daylight-saving rules, and
//! `TZ=:/path` to a TZif file. Each zone is chosen so that today's local
//! date is not the UTC date, so a server that fell back to UTC is caught.

mod common;

use common::*;
use rusqlite::Connection;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `date -u` of `unix`, as YYYY-MM-DD (an independent calendar).
fn utc_date(unix: i64) -> String {
    let out = Command::new("date").args(["-u", "-d", &format!("@{unix}"), "+%F"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// An offset of ±12 h that puts the local date a day off the UTC date now:
/// (seconds east of UTC, as a POSIX offset string of a zone named by it).
fn shifting_offset() -> (i64, &'static str, &'static str) {
    let hour = now().rem_euclid(86_400) / 3600;
    // Before noon UTC, 12 h west is yesterday; from noon, 12 h east is tomorrow.
    if hour < 12 { (-12 * 3600, "<-12>12", "<-12>") } else { (12 * 3600, "<+12>-12", "<+12>") }
}

/// Runs one test against a server with `TZ=tz`; returns the day keys of
/// the usage rows it wrote and the local dates the test may have fallen on.
fn day_keys_with(tz: &str, offset: i64) -> (Vec<String>, Vec<String>) {
    let before = now();
    let mut server = Server::start_with_env(&[("TZ", tz)], &[]);
    let run = client(server.addr, &["--duration", "0.5", "--remote-speed", "10M"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (status, log) = server.stop();
    assert!(status.success(), "{log:?}");
    assert!(log.iter().any(|l| l.contains("local time for quota periods from the TZ environment variable")), "{log:?}");
    let after = now();
    let conn = Connection::open(server.db()).unwrap();
    let mut q = conn.prepare("SELECT DISTINCT period_key FROM usage WHERE period = 'day'").unwrap();
    let keys: Vec<String> = q.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    let mut expect = vec![utc_date(before + offset), utc_date(after + offset)];
    expect.dedup();
    assert!(!expect.contains(&utc_date(before)), "the zone was chosen to differ from UTC");
    (keys, expect)
}

#[test]
fn a_posix_tz_string_moves_the_day_boundary() {
    let (offset, posix, _) = shifting_offset();
    let (keys, expect) = day_keys_with(posix, offset);
    assert!(!keys.is_empty() && keys.iter().all(|k| expect.contains(k)), "rows {keys:?}, local dates {expect:?}");
}

#[test]
fn a_daylight_saving_rule_in_force_moves_the_day_boundary() {
    let (offset, _, name) = shifting_offset();
    // Standard time is UTC; daylight time (±12 h) lasts from January 1 to
    // the end of December 31, so it is in force now (unless today is the
    // last day, where the eastern zone's rule ends at noon UTC).
    if utc_date(now()).ends_with("-12-31") {
        eprintln!("skipped on December 31");
        return;
    }
    let tz = format!("<+00>0{name}{},J1/0,J365/24", -offset / 3600);
    let (keys, expect) = day_keys_with(&tz, offset);
    assert!(!keys.is_empty() && keys.iter().all(|k| expect.contains(k)), "TZ={tz}: rows {keys:?}, local {expect:?}");
}

/// A TZif version 2 file: UTC until 2001-09-09, then `offset` for good, no footer.
fn tzif_file(offset: i32) -> Vec<u8> {
    let head = |timecnt: u32, typecnt: u32, charcnt: u32| {
        let mut h = b"TZif2".to_vec();
        h.extend([0; 15]);
        for n in [0, 0, 0, timecnt, typecnt, charcnt] {
            h.extend(n.to_be_bytes());
        }
        h
    };
    let mut f = head(0, 1, 1);
    f.extend([0; 7]);
    f.extend(head(1, 2, 4));
    f.extend(1_000_000_000i64.to_be_bytes());
    f.push(1);
    for off in [0, offset] {
        f.extend(off.to_be_bytes());
        f.extend([0, 0]);
    }
    f.extend(b"ZZZ\0\n\n");
    f
}

#[test]
fn tz_colon_path_reads_a_tzif_file() {
    let (offset, _, _) = shifting_offset();
    let dir = TempDir::new();
    let path = dir.path("zone.tzif");
    std::fs::write(&path, tzif_file(offset as i32)).unwrap();
    let (keys, expect) = day_keys_with(&format!(":{path}"), offset);
    assert!(!keys.is_empty() && keys.iter().all(|k| expect.contains(k)), "rows {keys:?}, local {expect:?}");
}

#[test]
fn an_unusable_tz_is_reported_not_ignored_silently() {
    let mut server = Server::start_with_env(&[("TZ", "not a zone!")], &[]);
    let line = server.wait_log("time zone: TZ: ", Duration::from_secs(5));
    assert!(line.contains("not a POSIX TZ string"), "{line}");
    server.stop();
}

/// Runs a server with TZ unset in a private mount namespace whose /etc is
/// a tmpfs holding only `files` (name, bytes); returns the day keys it
/// wrote, or None where such a namespace cannot be made.
fn day_keys_with_etc(files: &[(&str, Vec<u8>)]) -> Option<Vec<String>> {
    use std::io::BufRead;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and unshare(1) for a private /etc");
        return None;
    }
    let dir = TempDir::new();
    for (name, bytes) in files {
        std::fs::write(dir.0.join(name), bytes).unwrap();
    }
    let db = dir.path("btestd.db");
    let script = "mount -t tmpfs btestd-test /etc || exit 97
        cp \"$1\"/TZ \"$1\"/localtime /etc/ 2>/dev/null
        exec \"$0\" serve --listen 127.0.0.1:0 --db \"$2\"";
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", script, BIN, &dir.0.to_string_lossy(), &db]);
    cmd.env_remove("TZ").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let addr = loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("listening on ") => {
                break l.rsplit("listening on ").next().unwrap().trim().parse::<std::net::SocketAddr>().unwrap();
            }
            Some(Ok(l)) => seen.push(l),
            _ => {
                let status = wait_bounded(&mut child, Duration::from_secs(10));
                if status.code() == Some(97) {
                    eprintln!("skipped: cannot mount a tmpfs here");
                    return None;
                }
                panic!("server did not start ({status}): {seen:?}");
            }
        }
    };
    let run = client(addr, &["--duration", "0.5", "--remote-speed", "10M"]);
    // SAFETY: signals only the child we started (unshare exec'd into sh, sh into btestd).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(wait_bounded(&mut child, Duration::from_secs(10)).success());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let source = seen.iter().find(|l| l.contains("local time for quota periods from")).cloned().unwrap_or_default();
    let conn = Connection::open(&db).unwrap();
    let mut q = conn.prepare("SELECT DISTINCT period_key FROM usage WHERE period = 'day'").unwrap();
    let mut keys: Vec<String> = q.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    keys.push(source);
    Some(keys)
}

/// With TZ unset, /etc/TZ (OpenWrt's POSIX string) comes first, then
/// /etc/localtime (TZif).
#[test]
fn without_tz_etc_tz_then_etc_localtime_decide() {
    let (offset, posix, _) = shifting_offset();
    let before = now();
    let expect = |off: i64| [utc_date(before + off), utc_date(now() + off)];
    // /etc/TZ shifts the day; /etc/localtime says UTC: /etc/TZ wins.
    let both = [("TZ", format!("{posix}\n").into_bytes()), ("localtime", tzif_file(0))];
    let Some(keys) = day_keys_with_etc(&both) else { return };
    let (source, keys) = keys.split_last().unwrap();
    assert!(source.ends_with("from /etc/TZ"), "{source}");
    assert!(!keys.is_empty() && keys.iter().all(|k| expect(offset).contains(k)), "{keys:?}");
    // Only /etc/localtime, shifting the day.
    let Some(keys) = day_keys_with_etc(&[("localtime", tzif_file(offset as i32))]) else { return };
    let (source, keys) = keys.split_last().unwrap();
    assert!(source.ends_with("from /etc/localtime"), "{source}");
    assert!(!keys.is_empty() && keys.iter().all(|k| expect(offset).contains(k)), "{keys:?}");
    // Neither: UTC.
    let Some(keys) = day_keys_with_etc(&[]) else { return };
    let (source, keys) = keys.split_last().unwrap();
    assert!(source.contains("UTC"), "{source}");
    assert!(!keys.is_empty() && keys.iter().all(|k| expect(0).contains(k)), "{keys:?}");
}
