//! `btestd serve --syslog`: records reach /dev/log at their own priority,
//! without btestd's timestamp, with control bytes escaped.
//!
//! syslog(3) in glibc and musl always writes to /dev/log, so each server
//! runs in a private mount namespace (`unshare -m`; `-Urm` without root)
//! whose /dev is a small tmpfs holding the usual character devices and,
//! bind-mounted as /dev/log, a datagram socket this test listens on. The
//! system's /dev (and any real /dev/log) is never touched, and the mounts
//! vanish with the process.

mod common;

use common::{BIN, TempDir, client, die_with_parent, wait_bounded};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Builds the namespace's /dev (with /dev/log when the test made the
/// socket), then becomes btestd (same PID, so the records say
/// `btestd[<child pid>]`). $1 is the test's directory.
const IN_NAMESPACE: &str = r#"set -e
dir=$1; shift
mkdir "$dir/olddev"
mount --bind /dev "$dir/olddev"
mount -t tmpfs -o size=16k,mode=755 btestd-test-dev /dev
for n in null zero random urandom; do
    touch "/dev/$n"
    mount --bind "$dir/olddev/$n" "/dev/$n"
done
if [ -S "$dir/log" ]; then
    touch /dev/log
    mount --bind "$dir/log" /dev/log
fi
exec "$@"
"#;

/// A syslog daemon stand-in: the datagrams btestd sent to /dev/log.
struct Syslog {
    sock: UnixDatagram,
    dir: TempDir,
}

impl Syslog {
    fn new() -> Syslog {
        let dir = TempDir::new();
        let sock = UnixDatagram::bind(dir.0.join("log")).expect("bind the stand-in /dev/log");
        Syslog { sock, dir }
    }

    /// No syslogd: the namespace gets no /dev/log.
    fn absent() -> Syslog {
        Syslog { sock: UnixDatagram::unbound().unwrap(), dir: TempDir::new() }
    }

    /// Starts `btestd serve --syslog ARGS` with this socket as its /dev/log.
    fn serve(&self, args: &[&str]) -> Child {
        // SAFETY: geteuid has no preconditions.
        let ns = if unsafe { libc::geteuid() } == 0 { "-m" } else { "-Urm" };
        let mut cmd = Command::new("unshare");
        cmd.args([ns, "sh", "-c", IN_NAMESPACE, "sh", self.dir.0.to_str().unwrap(), BIN, "serve", "--syslog"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        cmd.spawn().expect("spawn unshare (util-linux)")
    }

    /// Waits for a record whose message contains `needle`; panics with
    /// everything received after `timeout`.
    fn wait(&self, seen: &mut Vec<Record>, pid: u32, needle: &str, timeout: Duration) -> Record {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(r) = seen.iter().find(|r| r.message.contains(needle)) {
                return r.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no syslog record with {needle:?} within {timeout:?}; got {seen:#?}");
            self.sock.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.sock.recv(&mut buf) {
                seen.push(Record::parse(&buf[..n], pid));
            }
        }
    }
}

/// One datagram: `<PRI>Mmm dd hh:mm:ss btestd[PID]: message`.
#[derive(Clone, Debug)]
struct Record {
    priority: u8,
    message: String,
}

impl Record {
    fn parse(datagram: &[u8], pid: u32) -> Record {
        let text = std::str::from_utf8(datagram).expect("a record is UTF-8");
        // musl's syslog(3) ends each datagram with a newline, glibc's does not.
        let text = text.strip_suffix('\n').unwrap_or(text);
        let (pri, rest) = text.strip_prefix('<').and_then(|t| t.split_once('>')).expect("<PRI> header");
        let tag = format!("btestd[{pid}]: ");
        let at = rest.find(&tag).unwrap_or_else(|| panic!("no {tag:?} in {text:?}"));
        // What syslog(3) puts before the tag is its own "Mmm dd hh:mm:ss ".
        assert_eq!(at, 16, "syslog(3) time stamp then the tag: {text:?}");
        Record { priority: pri.parse().expect("numeric priority"), message: rest[at + tag.len()..].to_string() }
    }
}

/// facility daemon (3) * 8 + severity
const ERR: u8 = 3 * 8 + 3;
const WARNING: u8 = 3 * 8 + 4;
const INFO: u8 = 3 * 8 + 6;
const DEBUG: u8 = 3 * 8 + 7;

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut s).unwrap();
    s
}

#[test]
fn records_carry_their_priority_and_no_btestd_timestamp() {
    let log = Syslog::new();
    let mut child = log.serve(&[
        "--listen",
        "127.0.0.1:0",
        "--no-db",
        "-v",
        "--user",
        "alice",
        "--password",
        "secret",
        "--auth-scheme",
        "md5",
        "--auth-fail-limit",
        "1",
    ]);
    let pid = child.id();
    let mut seen = Vec::new();
    let listening = log.wait(&mut seen, pid, "listening on ", Duration::from_secs(10));
    assert_eq!(listening.priority, INFO, "{listening:?}");
    // The message is exactly what btestd says: no "[INFO]", no RFC 3339 time.
    assert!(listening.message.starts_with("listening on 127.0.0.1:"), "{listening:?}");
    let addr = listening.message["listening on ".len()..].trim().parse().expect("listen address");

    // A failed login whose user name carries a newline: a warning, escaped.
    let run = client(addr, &["--duration", "1", "--user", "eve\nroot", "--password", "wrong"]);
    assert_ne!(run.code, 0, "a wrong password must fail: {run:?}");
    let connected = log.wait(&mut seen, pid, ": connected", Duration::from_secs(5));
    assert_eq!(connected.priority, DEBUG, "{connected:?}");
    let failed = log.wait(&mut seen, pid, "authentication failed", Duration::from_secs(5));
    assert_eq!(failed.priority, WARNING, "{failed:?}");
    assert!(failed.message.contains("user 'eve\\x0aroot'"), "{failed:?}");
    let banned = log.wait(&mut seen, pid, "banned for 300 s", Duration::from_secs(5));
    assert_eq!(banned.priority, WARNING, "{banned:?}");
    assert!(seen.iter().all(|r| !r.message.contains('\n') && !r.message.starts_with('[')), "{seen:#?}");

    // SAFETY: signals only the process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let stopped = log.wait(&mut seen, pid, "server stopped", Duration::from_secs(2));
    assert_eq!(stopped.priority, INFO);
    assert_eq!(stderr_of(&mut child), "", "with --syslog nothing goes to stderr");
}

#[test]
fn a_start_error_is_logged_at_err_and_exits_1() {
    let log = Syslog::new();
    let mut child = log.serve(&["--listen", "127.0.0.1:0", "--no-db", "--flush-interval", "0"]);
    let pid = child.id();
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{status:?}");
    let mut seen = Vec::new();
    let err = log.wait(&mut seen, pid, "--flush-interval", Duration::from_secs(2));
    assert_eq!(err.priority, ERR, "{err:?}");
    assert_eq!(err.message, "--flush-interval must be 1 to 3600 seconds, --persist-interval at least 1 second");
    assert_eq!(stderr_of(&mut child), "");
}

#[test]
fn without_a_syslogd_btestd_says_so_on_stderr_and_still_serves() {
    let log = Syslog::absent();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = log.serve(&["--listen", &addr, "--no-db"]);
    let pid = child.id();
    // Where it listens went to the missing syslogd: the greeting shows it serves.
    let deadline = Instant::now() + Duration::from_secs(10);
    let hello = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut b = [0u8; 4];
            std::io::Read::read_exact(&mut s, &mut b).unwrap();
            break b;
        }
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "btestd does not serve");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(hello, [1, 0, 0, 0]);
    // SAFETY: signals only the process this test started.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert_eq!(
        stderr_of(&mut child),
        "btestd: --syslog, but there is no /dev/log yet: records are lost until syslogd runs\n"
    );
}
