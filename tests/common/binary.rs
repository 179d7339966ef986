//! The real binary as a child process: `siemgate serve --config <dir>/siemgate.toml`, run in a
//! scratch directory `dir` with extra environment variables. Its stderr is drained until EOF by
//! a thread into a shared buffer (the child never blocks on a full pipe, and every line stays
//! readable); the waits for the listeners' ready lines and for the exit are bounded; signals go
//! through `kill(1)`; a process still running when its [`Process`] is dropped is killed, so a
//! failed assertion never leaves it behind. [`run`] runs a command that ends by itself (`check`,
//! a `serve` that must refuse its config) to its end, bounded, and keeps stdout and stderr.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_siemgate");
/// Bound on waiting for the ready lines (and for a start that must fail to end).
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one run of [`run`].
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a wait for the exit looks again.
const POLL: Duration = Duration::from_millis(20);

/// The config file a process started in `dir` reads.
pub fn config_path(dir: &Path) -> PathBuf {
    dir.join("siemgate.toml")
}

/// Writes `config`, with every `{dir}` replaced by `dir`, to [`config_path`].
pub fn write_config(dir: &Path, config: &str) -> PathBuf {
    let path = config_path(dir);
    std::fs::write(&path, config.replace("{dir}", dir.to_str().unwrap())).unwrap();
    path
}

/// A spawned `siemgate serve` whose stderr is drained (kept, and sent line by line) until EOF;
/// killed on drop if it is still running.
pub struct Process {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<String>,
    reader: Option<JoinHandle<()>>,
}

impl Process {
    /// Writes `config` (see [`write_config`]) and starts the binary on it.
    pub fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Process {
        write_config(dir, config);
        Process::spawn(dir, env)
    }

    /// Starts the binary on the config file already at [`config_path`], in `dir`, with `env`
    /// added to the environment (e.g. `SIEMGATE_LOG`).
    pub fn spawn(dir: &Path, env: &[(&str, &str)]) -> Process {
        Process::spawn_with(dir, &[], env)
    }

    /// [`spawn`](Self::spawn) with `args` after `serve --config <path>` (e.g. `--role intake`).
    pub fn spawn_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut child = Command::new(BIN)
            .args(["serve", "--config", config_path(dir).to_str().unwrap()])
            .args(args)
            .current_dir(dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn siemgate");
        let pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel::<String>();
        let reader = {
            let stderr = stderr.clone();
            std::thread::spawn(move || {
                let mut pipe = BufReader::new(pipe);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match pipe.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                            stderr.lock().unwrap().push(line.clone());
                            let _ = tx.send(line);
                        }
                    }
                }
            })
        };
        Process {
            child,
            stderr,
            lines,
            reader: Some(reader),
        }
    }

    /// The child's process id (e.g. to read `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's resident memory, now and at its peak (see [`memory_kib`]).
    pub fn memory_kib(&self) -> Memory {
        memory_kib(self.pid())
    }

    /// Everything the process wrote to stderr so far, one line per line.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// How many stderr lines there are so far.
    pub fn line_count(&self) -> usize {
        self.stderr.lock().unwrap().len()
    }

    /// The stderr lines from index `from` on.
    pub fn lines_from(&self, from: usize) -> Vec<String> {
        self.stderr.lock().unwrap()[from..].to_vec()
    }

    /// Waits (bounded by [`READY_TIMEOUT`]) for the `<name> listener ready addr=...` line of
    /// each of `listeners` (`"hooks"`, `"metrics"`, `"admin"`); returns their addresses in that
    /// order.
    pub fn wait_ready<const N: usize>(&mut self, listeners: [&str; N]) -> [SocketAddr; N] {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut found: [Option<SocketAddr>; N] = [None; N];
        while found.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    for (name, addr) in listeners.iter().zip(found.iter_mut()) {
                        if let Some(a) = ready_addr(&line, &format!("{name} listener ready")) {
                            *addr = Some(a);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "no {} ready lines within {READY_TIMEOUT:?}; stderr:\n{}",
                    listeners.join(" and "),
                    self.stderr_text()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "siemgate exited before it was ready ({:?}); stderr:\n{}",
                    self.child.try_wait(),
                    self.stderr_text()
                ),
            }
        }
        found.map(Option::unwrap)
    }

    /// Sends a signal with `kill(1)` (`sig` is e.g. "-TERM", "-HUP").
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} failed: {status:?}");
    }

    /// Sends SIGKILL (without waiting for the exit).
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
    }

    /// Waits (bounded) for the process to exit, then for stderr to reach EOF; `None` if it is
    /// still running at the deadline (it is left running).
    pub fn try_wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if started.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(POLL);
        };
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        Some(status)
    }

    /// Kills the process, waits for it, and panics with `what` and the stderr.
    pub fn kill_and_panic(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("{what}; stderr:\n{}", self.stderr_text());
    }

    /// Waits (bounded) for the process to exit; kills it and panics if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.try_wait_exit(timeout) {
            Some(s) => s,
            None => self.kill_and_panic(&format!("siemgate did not exit within {timeout:?}")),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's resident memory in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the most it ever was.
    pub peak: u64,
}

/// The resident memory of process `pid`, now and at its peak.
pub fn memory_kib(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}

/// `... <what> addr=127.0.0.1:PORT` -> the address.
pub fn ready_addr(line: &str, what: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(what)?..];
    rest[rest.find("addr=")? + "addr=".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What one finished run of the binary left behind.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Stdout followed by stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `siemgate <args>` in `cwd`, with the variables `env_remove` removed from its
/// environment, to its end; waits at most [`RUN_TIMEOUT`] (the child is killed and the test
/// fails after that). Both pipes are drained by threads, so the child never blocks on them.
pub fn run(cwd: &Path, args: &[&str], env_remove: &[&str]) -> Run {
    run_with(cwd, args, env_remove, None)
}

/// [`run`] with `stdin` written to the child's standard input (by a thread, then closed; a
/// child that exits without reading all of it leaves a broken pipe, which is fine).
pub fn run_with_stdin(cwd: &Path, args: &[&str], stdin: &[u8]) -> Run {
    run_with(cwd, args, &[], Some(stdin.to_vec()))
}

fn run_with(cwd: &Path, args: &[&str], env_remove: &[&str], stdin: Option<Vec<u8>>) -> Run {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(cwd);
    for var in env_remove {
        command.env_remove(var);
    }
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn siemgate");
    let writer = stdin.map(|body| {
        let mut input = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = input.write_all(&body);
        })
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    let err_thread = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        String::from_utf8_lossy(&b).into_owned()
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "siemgate {args:?} still running after {RUN_TIMEOUT:?}; stderr so far:\n{}",
                err_thread.join().unwrap_or_default()
            );
        }
        std::thread::sleep(POLL);
    };
    if let Some(w) = writer {
        w.join().unwrap();
    }
    Run {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    }
}
