//! Test harness: real `btestd` processes on loopback.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_btestd");

/// A directory under the system's temp dir, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("btestd-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    /// The database file a test puts here.
    pub fn db(&self) -> std::path::PathBuf {
        self.0.join("btestd.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A test may have made it read-only.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o700));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a server's process runs between fork and exec.
type Setup = Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>;

/// A running `btestd serve` whose stderr is collected line by line. Each
/// has its own database (unless the arguments name one or `--no-db`).
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
    pub dir: TempDir,
}

impl Server {
    /// Starts `btestd serve --listen 127.0.0.1:0 <args>` and waits for it to listen.
    pub fn start(args: &[&str]) -> Server {
        Server::start_listening(&["127.0.0.1:0"], args)
    }

    pub fn start_listening(listen: &[&str], args: &[&str]) -> Server {
        Server::spawn(listen, args, None, &[])
    }

    /// Starts a server with these environment variables set (TZ, say).
    pub fn start_with_env(env: &[(&str, &str)], args: &[&str]) -> Server {
        Server::spawn(&["127.0.0.1:0"], args, None, env)
    }

    /// Starts a server whose open-file limit (soft and hard) is `nofile`.
    pub fn start_with_fd_limit(nofile: u64, args: &[&str]) -> Server {
        let n = nofile as libc::rlim_t;
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        let limit =
            move || match unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &libc::rlimit { rlim_cur: n, rlim_max: n }) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            };
        Server::spawn(&["127.0.0.1:0"], args, Some(Box::new(limit)), &[])
    }

    /// Starts a server that runs `setup` in its process before btestd
    /// starts (a seccomp filter, say). `setup` must be async-signal-safe.
    pub fn start_after(setup: fn() -> std::io::Result<()>, args: &[&str]) -> Server {
        Server::spawn(&["127.0.0.1:0"], args, Some(Box::new(setup)), &[])
    }

    /// The server is `BTESTD_SERVE_BIN` when set, so the same tests can
    /// measure another build (an older release, say) side by side.
    fn spawn(listen: &[&str], args: &[&str], setup: Option<Setup>, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(std::env::var_os("BTESTD_SERVE_BIN").unwrap_or_else(|| BIN.into()));
        cmd.envs(env.iter().copied());
        if let Some(setup) = setup {
            use std::os::unix::process::CommandExt;
            // SAFETY: every Setup is async-signal-safe and touches only the child.
            unsafe { cmd.pre_exec(setup) };
        }
        cmd.arg("serve");
        for l in listen {
            cmd.args(["--listen", l]);
        }
        let dir = TempDir::new();
        if !args.iter().any(|a| *a == "--db" || *a == "--no-db") {
            cmd.args(["--db", &dir.path("btestd.db")]);
        }
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("spawn btestd serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let (lock, cv) = &*sink;
                lock.lock().unwrap().push(line);
                cv.notify_all();
            }
        });
        let mut s = Server { child, addr: "127.0.0.1:1".parse().unwrap(), log, dir };
        let line = s.wait_log("listening on ", Duration::from_secs(10));
        let addr = line.rsplit("listening on ").next().unwrap().trim();
        s.addr = addr.parse().expect("listen address in log");
        s
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The control socket beside the database the server was started with.
    pub fn control_path(&self) -> String {
        self.dir.path("btestd.control")
    }

    /// Where the web page listens, from its start line (`--http ADDR:0` picks the port).
    pub fn web_addr(&self) -> SocketAddr {
        let line = self.wait_log("web page on http://", Duration::from_secs(10));
        line.rsplit("http://").next().unwrap().trim_end_matches('/').parse().expect("web address in log")
    }

    pub fn log(&self) -> Vec<String> {
        self.log.0.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`; panics with the log after `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_log_count(needle, 1, timeout).pop().unwrap()
    }

    /// Waits until `count` lines contain `needle`; returns them.
    pub fn wait_log_count(&self, needle: &str, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.log;
        let mut lines = lock.lock().unwrap();
        loop {
            let found: Vec<String> = lines.iter().filter(|l| l.contains(needle)).cloned().collect();
            if found.len() >= count {
                return found;
            }
            let now = Instant::now();
            if now >= deadline {
                panic!("timed out waiting for {count} log line(s) with {needle:?}; log:\n{}", lines.join("\n"));
            }
            lines = cv.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// The `session N ended:` record for the session that `start_needle`
    /// identified, as key=value pairs.
    pub fn session_end(&self, id: u64, timeout: Duration) -> HashMap<String, String> {
        let line = self.wait_log(&format!("session {id} ended:"), timeout);
        kv(&line)
    }

    /// The end record of the session whose primary connection came from `peer`.
    pub fn session_end_of(&self, peer: SocketAddr, timeout: Duration) -> HashMap<String, String> {
        kv(&self.wait_log(&format!("ended: peer={peer} "), timeout))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signals only the child we started.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn stop(&mut self) -> (std::process::ExitStatus, Vec<String>) {
        self.signal(libc::SIGTERM);
        let status = wait_bounded(&mut self.child, Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
        (status, self.log())
    }

    /// The database file this server uses (when the harness chose it).
    pub fn db(&self) -> String {
        self.dir.path("btestd.db")
    }

    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `btestd <args> --db <db>` (an admin command); returns (exit code, stdout, stderr).
pub fn admin(db: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).args(["--db", db]).stdin(Stdio::null()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

pub fn wait_bounded(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Parses `key=value` words of a log line.
pub fn kv(line: &str) -> HashMap<String, String> {
    line.split_whitespace().filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

pub fn num(m: &HashMap<String, String>, key: &str) -> u64 {
    m.get(key).unwrap_or_else(|| panic!("no {key} in {m:?}")).parse().unwrap()
}

/// The CSV summary of a `btestd client` run.
#[derive(Debug, Clone, Default)]
pub struct ClientRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub seconds: f64,
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub remote_rx_bytes: u64,
    pub remote_cpu: Option<u8>,
    pub lost: u64,
    pub intervals: usize,
    /// Bytes sent and received in each reported second.
    pub interval_tx: Vec<u64>,
    pub interval_rx: Vec<u64>,
}

/// Runs `btestd client ADDR --format csv <args>` (bounded by its duration plus a margin).
pub fn client(addr: SocketAddr, args: &[&str]) -> ClientRun {
    let child = client_spawn(addr, args);
    client_wait(child)
}

/// Makes a spawned process exit if the test process dies, so a crashed test
/// never leaves servers behind.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

pub fn client_spawn(addr: SocketAddr, args: &[&str]) -> Child {
    let mut cmd = Command::new(BIN);
    die_with_parent(&mut cmd);
    cmd.arg("client")
        .arg(addr.to_string())
        .args(["--format", "csv"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn btestd client")
}

pub fn client_wait(mut child: Child) -> ClientRun {
    let status = wait_bounded(&mut child, Duration::from_secs(60));
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    parse_client(Output { status, stdout: out.into_bytes(), stderr: err.into_bytes() })
}

fn parse_client(o: Output) -> ClientRun {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut run = ClientRun {
        code: o.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        ..Default::default()
    };
    for line in stdout.lines() {
        let f: Vec<&str> = line.split(',').collect();
        match f.first() {
            Some(&"interval") => {
                run.intervals += 1;
                run.interval_tx.push(f[2].parse().unwrap());
                run.interval_rx.push(f[3].parse().unwrap());
            }
            Some(&"summary") => {
                run.seconds = f[1].parse().unwrap();
                run.tx_bytes = f[2].parse().unwrap();
                run.rx_bytes = f[3].parse().unwrap();
                run.remote_cpu = f[7].parse().ok();
                run.remote_rx_bytes = f[8].parse().unwrap();
                run.lost = f[9].parse().unwrap();
            }
            _ => {}
        }
    }
    run.stdout = stdout;
    run
}

/// A raw control connection for byte-exact exchanges.
pub struct Raw {
    pub s: TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        Raw::wrap(s)
    }

    fn wrap(s: TcpStream) -> Raw {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s }
    }

    /// Connects from a chosen local IPv4 address (e.g. 127.0.0.2), since
    /// loopback otherwise always picks 127.0.0.1 as the source.
    pub fn connect_from(local: std::net::Ipv4Addr, addr: SocketAddr) -> Raw {
        use std::os::fd::FromRawFd;
        fn sin(ip: std::net::Ipv4Addr, port: u16) -> libc::sockaddr_in {
            // SAFETY: all-zero is a valid sockaddr_in.
            let mut a: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = port.to_be();
            a.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
            a
        }
        let SocketAddr::V4(dst) = addr else { panic!("IPv4 only") };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: plain socket calls on a descriptor we own; results checked.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0);
            let src = sin(local, 0);
            assert_eq!(libc::bind(fd, (&src as *const libc::sockaddr_in).cast(), len), 0, "bind {local}");
            let dst = sin(*dst.ip(), dst.port());
            assert_eq!(libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), len), 0, "connect {addr}");
            Raw::wrap(TcpStream::from_raw_fd(fd))
        }
    }

    pub fn read_n(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.s.read_exact(&mut b).unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
        b
    }

    pub fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    /// Reads until EOF (or error), with a timeout; returns what arrived and
    /// whether EOF/reset was seen.
    /// At most 1 MB is kept.
    pub fn read_to_close(&mut self, timeout: Duration) -> (Vec<u8>, bool) {
        self.s.set_read_timeout(Some(timeout)).unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match self.s.read(&mut buf) {
                Ok(0) => return (all, true),
                Ok(n) if all.len() + n > 1 << 20 => return (all, false),
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (all, true),
                Err(_) => return (all, false),
            }
        }
    }

    /// Reads HELLO and sends a command; returns the 4-byte reply.
    pub fn command(addr: SocketAddr, cmd: &[u8; 16]) -> (Raw, [u8; 4]) {
        let mut r = Raw::connect(addr);
        assert_eq!(r.read_n(4), [1, 0, 0, 0], "HELLO");
        r.send(cmd);
        let rep: [u8; 4] = r.read_n(4).try_into().unwrap();
        (r, rep)
    }
}

/// `01 dir random conns tx_size(LE) 00 00 remote(LE) local(LE)` for TCP.
pub fn tcp_cmd(dir: u8, zeros: bool, conns: u8, remote: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 1;
    c[1] = dir;
    c[2] = u8::from(zeros);
    c[3] = conns;
    c[4..6].copy_from_slice(&32768u16.to_le_bytes());
    c[8..12].copy_from_slice(&remote.to_le_bytes());
    c
}

/// A UDP command: `00 dir 01 00 tx_size(LE) 00 00 remote(LE) 00..`.
pub fn udp_cmd(dir: u8, tx_size: u16, remote: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[1] = dir;
    c[2] = 1;
    c[4..6].copy_from_slice(&tx_size.to_le_bytes());
    c[8..12].copy_from_slice(&remote.to_le_bytes());
    c
}

/// A test datagram: big-endian sequence number, then zeros.
pub fn datagram(seq: u32, len: usize) -> Vec<u8> {
    let mut d = vec![0u8; len.max(4)];
    d[..4].copy_from_slice(&seq.to_be_bytes());
    d
}

/// Server limits raised for tests that run hundreds of clients from 127.0.0.1.
pub const BUSY: [&str; 8] = [
    "--max-sessions",
    "300",
    "--max-sessions-per-ip",
    "300",
    "--max-handshakes",
    "300",
    "--max-handshakes-per-ip",
    "300",
];

/// A status message, `07 cpu 00 00 seq(LE) bytes(LE)`, with the CPU byte
/// exactly as given.
pub fn status(cpu: u8, seq: u32, bytes: u32) -> [u8; 12] {
    let mut s = [0u8; 12];
    s[0] = 0x07;
    s[1] = cpu;
    s[4..8].copy_from_slice(&seq.to_le_bytes());
    s[8..12].copy_from_slice(&bytes.to_le_bytes());
    s
}
