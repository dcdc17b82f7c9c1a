//! Helpers of the CLI tests: a real daemon process on a temp state dir, a bootable raw disk made
//! in the test, and an HTTP server with `Range` support that can cut a transfer short.

#![allow(dead_code)]

use limiquantix_test_support::{DaemonPaths, DaemonProcess, kill_vm_qemus};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A 512-byte x86 boot sector that writes `LQ-TINY-BOOT-OK` to COM1 and halts: a real bootable
/// disk for SeaBIOS, quick under TCG.
pub fn boot_sector() -> Vec<u8> {
    let mut code = vec![
        0xfa, // cli
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0xbe, 0x16, 0x7c, // mov si, 0x7c16 (the message)
        0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
        0xac, // loop: lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x03, // jz done
        0xee, // out dx, al
        0xeb, 0xf8, // jmp loop
        0xf4, // done: hlt
        0xeb, 0xfd, // jmp done
    ];
    code.extend_from_slice(b"LQ-TINY-BOOT-OK\r\n\0");
    code.resize(510, 0);
    code.extend_from_slice(&[0x55, 0xaa]);
    code
}

/// Marker the boot sector prints.
pub const BOOT_MARKER: &str = "LQ-TINY-BOOT-OK";

/// A 1 MiB raw disk whose first sector is [`boot_sector`].
pub fn boot_disk() -> Vec<u8> {
    let mut disk = boot_sector();
    disk.resize(1 << 20, 0);
    disk
}

/// Lowercase hex sha256, computed with `sha256sum` (an independent implementation).
pub fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// The daemon binary next to lqctl's. `cargo test --workspace` has built it already; when it is
/// missing or older than the daemon's sources (e.g. `cargo test -p lqctl` after an edit), it is
/// built once per test process.
pub fn daemon_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let lqctl = PathBuf::from(env!("CARGO_BIN_EXE_lqctl"));
        let dir = lqctl.parent().unwrap();
        let bin = dir.join("limiquantix-node");
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        // The daemon and the workspace crates it is built from.
        let newest_source = [
            "limiquantix-node",
            "limiquantix-vm",
            "limiquantix-qemu",
            "limiquantix-storage",
            "limiquantix-fs",
            "limiquantix-proto",
            "limiquantix-cloudinit",
        ]
        .iter()
        .filter_map(|c| newest_mtime(&crates.join(c)))
        .max();
        if built.is_none() || newest_source > built {
            let status = Command::new(env!("CARGO"))
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "limiquantix-node",
                    "--bin",
                    "limiquantix-node",
                ])
                .env("CARGO_TARGET_DIR", dir.parent().unwrap())
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building limiquantix-node failed");
        }
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

/// The newest modification time of the sources under a crate (src/, proto/, Cargo.toml).
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.join("src"), dir.join("proto"), dir.join("Cargo.toml")];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            stack.extend(
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path()),
            );
        } else if let Ok(m) = meta.modified() {
            newest = newest.max(Some(m));
        }
    }
    newest
}

/// A running daemon on a temp state dir; killed on drop, with any VM it left running.
pub struct TestDaemon {
    /// Temp dir holding state, run dir and inputs.
    pub dir: tempfile::TempDir,
    /// Its Unix socket.
    pub socket: PathBuf,
    paths: DaemonPaths,
    process: DaemonProcess,
}

impl TestDaemon {
    /// Starts `limiquantix-node` under TCG and waits for its socket.
    pub fn start() -> Self {
        Self::start_with(tempfile::tempdir().unwrap(), &[])
    }

    /// Starts `limiquantix-node` in `dir` with extra flags (e.g. a TLS listener).
    pub fn start_with(dir: tempfile::TempDir, extra: &[String]) -> Self {
        let paths = DaemonPaths {
            socket: dir.path().join("run/node.sock"),
            ..DaemonPaths::under(dir.path())
        };
        let process = DaemonProcess::start(daemon_binary(), &paths, |cmd| {
            cmd.arg("--listen")
                .arg(format!("unix:{}", paths.socket.display()))
                .args(extra);
        });
        TestDaemon {
            dir,
            socket: paths.socket.clone(),
            paths,
            process,
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        self.paths.log_text()
    }

    /// `lqctl --socket SOCKET ARGS...` (no colour, no terminal).
    pub fn lqctl(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_lqctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts a long-running lqctl (e.g. `events`), its stdout read line by line.
    pub fn spawn(&self, args: &[&str]) -> Streaming {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lqctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Streaming { child, lines: rx }
    }

    /// [`TestDaemon::ok`] with the arguments written as one whitespace-separated string.
    pub fn ok_s(&self, args: &str) -> String {
        self.ok(&args.split_whitespace().collect::<Vec<_>>())
    }

    /// [`TestDaemon::lqctl`] with the arguments written as one whitespace-separated string.
    pub fn run_s(&self, args: &str) -> Output {
        self.lqctl(&args.split_whitespace().collect::<Vec<_>>())
    }

    /// Like [`TestDaemon::lqctl`], failing the test unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.lqctl(args);
        assert_eq!(
            out.code,
            Some(0),
            "lqctl {args:?} failed: {}\n--- daemon log ---\n{}",
            out.stderr,
            self.log()
        );
        out.stdout
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.process.kill();
        // VMs a failed test left running: their QEMUs outlive the daemon; end them by their
        // pidfiles (ours, in the temp run dir).
        kill_vm_qemus(&self.paths.run);
    }
}

/// A running lqctl whose output lines arrive on a channel; killed on drop.
pub struct Streaming {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Streaming {
    /// Lines printed until one satisfies `last` (included) or `timeout` passes.
    pub fn lines_until(&self, timeout: Duration, last: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = last(&line);
                    out.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What an lqctl run printed.
#[derive(Debug)]
pub struct Output {
    /// Exit code.
    pub code: Option<i32>,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

/// An HTTP/1.1 server for one file on 127.0.0.1, in a thread: supports `Range: bytes=N-`; the
/// n-th request is cut after `cuts[n]` body bytes when given. Records the Range headers seen.
pub struct RangeServer {
    /// URL of the file.
    pub url: String,
    /// Range header of each request (None: no Range).
    pub ranges: Arc<Mutex<Vec<Option<String>>>>,
}

impl RangeServer {
    /// Serves `body` as `/NAME`.
    pub fn start(name: &str, body: Vec<u8>, cuts: Vec<Option<usize>>) -> Self {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/{name}", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        std::thread::spawn(move || {
            for (n, sock) in listener.incoming().enumerate() {
                let Ok(mut sock) = sock else { return };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => req.extend_from_slice(&buf[..k]),
                    }
                }
                let req = String::from_utf8_lossy(&req).to_string();
                let range = req.lines().find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("range"))
                        .map(|(_, v)| v.trim().to_owned())
                });
                seen.lock().unwrap().push(range.clone());
                let start = range
                    .as_deref()
                    .and_then(|r| r.strip_prefix("bytes="))
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|s| s.parse::<usize>().ok())
                    .filter(|s| *s < body.len());
                let len = body.len();
                let head = match start {
                    Some(s) => format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n",
                        len - 1,
                        len - s
                    ),
                    None => format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"),
                };
                let _ = sock.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
                let rest = &body[start.unwrap_or(0)..];
                let send = cuts
                    .get(n)
                    .copied()
                    .flatten()
                    .map_or(rest.len(), |c| c.min(rest.len()));
                let _ = sock.write_all(&rest[..send]);
            }
        });
        RangeServer { url, ranges }
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with `openssl` in
/// `dir`: (ca.pem, server.pem, server.key, client.pem, client.key).
pub fn make_certs(dir: &Path) -> [PathBuf; 5] {
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &EC_KEY,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=lq-test-ca",
            ],
        ]
        .concat(),
    );
    make_signed_cert(
        dir,
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    make_signed_cert(dir, "client", "extendedKeyUsage=clientAuth\n");
    [
        "ca.pem",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ]
    .map(|f| dir.join(f))
}

/// The `openssl req` options of a new key: P-256, unencrypted.
const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
];

/// Makes `NAME.key` and `NAME.pem` in `dir`: a certificate for `CN=lq-NAME` with the extensions
/// `ext`, signed by the CA `make_certs` made there (`ca.pem`, `ca.key`).
fn make_signed_cert(dir: &Path, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    let (key, csr, pem, extfile) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            &["req"][..],
            &EC_KEY,
            &[
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN=lq-{name}"),
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "1",
            "-extfile",
            &extfile,
        ],
    );
}

/// Runs `openssl ARGS` in `dir`; fails the test with openssl's stderr when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
