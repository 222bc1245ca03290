//! One sample's process from start to end: the program on its standard input followed by an end
//! marker, its output kept to a bounded tail, its end awaited without reaping so that its CPU
//! time can still be read, the wall-clock backstop, and the cleanup of what it left running.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::isolate::{self, Plan};
use super::outcome::{classify, Ending, Execution};
use super::{Sandbox, SANDBOX_PATH};
use crate::error::{CodegenError, Result};

/// How much of each output stream is kept: its last bytes.
const OUTPUT_TAIL: usize = 64 << 10;

/// How often a running sample is checked on.
const POLL: Duration = Duration::from_millis(5);

/// Runs `program` under `plan`.
pub(super) fn run(sandbox: &Sandbox, program: &str, plan: Plan) -> Result<Execution> {
    let spawn_err = |what: &str| {
        let what = what.to_string();
        move |source| CodegenError::Spawn { what, source }
    };
    let uid = plan.uid;
    let nonce = format!("ponder-end-{:032x}", rand::random::<u128>());
    let text = format!(
        "{program}\nimport sys as _ponder_sys\n_ponder_sys.stdout.write(\"\\n{nonce}\\n\")\n_ponder_sys.stdout.flush()\n"
    );

    // Unisolated samples work in a host temporary directory instead of their own tmpfs.
    let host_dir = if sandbox.isolated {
        None
    } else {
        Some(tempfile::tempdir().map_err(spawn_err("creating a working directory"))?)
    };
    let home = host_dir
        .as_ref()
        .map_or_else(|| "/tmp".to_string(), |d| d.path().display().to_string());

    let mut cmd = Command::new(&sandbox.python);
    cmd.args(["-s", "-B", "-u", "-"])
        .env_clear()
        .env("PATH", SANDBOX_PATH)
        .env("HOME", &home)
        .env("TMPDIR", &home)
        .env("LANG", "C.UTF-8")
        .env("PYTHONHASHSEED", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &host_dir {
        cmd.current_dir(dir.path());
    }
    isolate::install(&mut cmd, plan);

    let start = Instant::now();
    let mut child = cmd.spawn().map_err(spawn_err("starting python"))?;
    let pid = Pid::from_raw(child.id() as i32);
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");

    let (ending, cpu_seconds, out, err) = std::thread::scope(|scope| {
        // A sample that exits without reading its program makes this write fail: ignored.
        scope.spawn(move || {
            let _ = stdin.write_all(text.as_bytes());
        });
        let out = scope.spawn(move || tail(stdout));
        let err = scope.spawn(move || tail(stderr));

        let backstop = Duration::from_secs(sandbox.limits.wall_seconds);
        let mut killed_by_backstop = false;
        loop {
            match waitid(
                Id::Pid(pid),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
            ) {
                Ok(WaitStatus::StillAlive) => {
                    if !killed_by_backstop && start.elapsed() > backstop {
                        let _ = killpg(pid, Signal::SIGKILL);
                        killed_by_backstop = true;
                    }
                    std::thread::sleep(POLL);
                }
                Ok(_) => break,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(spawn_err("waiting for python")(e.into())),
            }
        }
        // Still a zombie: its CPU time is readable until it is reaped.
        let cpu_seconds = cpu_seconds(pid);
        let status = child.wait().map_err(spawn_err("reaping python"))?;
        // Whatever it started: first its process group, then every process of its uid.
        let _ = killpg(pid, Signal::SIGKILL);
        if sandbox.isolated {
            clear_uid(uid).map_err(spawn_err("killing what the sample left running"))?;
        }
        let ending = if killed_by_backstop {
            Ending::Backstop
        } else if let Some(signal) = status.signal() {
            Ending::Signal(Signal::try_from(signal).unwrap_or(Signal::SIGKILL))
        } else {
            Ending::Exit(status.code().unwrap_or(-1))
        };
        let out = out.join().expect("reader does not panic");
        let err = err.join().expect("reader does not panic");
        Ok((ending, cpu_seconds, out, err))
    })?;

    let wall_seconds = start.elapsed().as_secs_f64();
    let mut stdout = String::from_utf8_lossy(&out).into_owned();
    let marker = format!("\n{nonce}\n");
    let reached_end = stdout.ends_with(&marker);
    if reached_end {
        stdout.truncate(stdout.len() - marker.len());
    }
    let (outcome, detail) = classify(ending, cpu_seconds, sandbox.limits.cpu_seconds, reached_end);
    Ok(Execution {
        outcome,
        detail,
        cpu_seconds,
        wall_seconds,
        stdout,
        stderr: String::from_utf8_lossy(&err).into_owned(),
    })
}

/// Kills every process of `uid` until none is left, so that the next sample of the slot starts
/// with its whole process count. Gives up after [`CLEAR_WITHIN`] (a process stuck in the kernel,
/// or a zombie its new parent does not reap); the next sample then starts with less.
fn clear_uid(uid: u32) -> std::io::Result<()> {
    let start = Instant::now();
    loop {
        isolate::kill_every_process_of(uid)?;
        if processes_of(uid) == 0 || start.elapsed() > CLEAR_WITHIN {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How long [`clear_uid`] keeps trying.
const CLEAR_WITHIN: Duration = Duration::from_secs(2);

/// The processes whose real uid is `uid`, zombies included (they still count against the
/// process limit), from `/proc/PID/status`.
fn processes_of(uid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| real_uid(status) == Some(uid))
        .count()
}

/// The real uid of a `/proc/PID/status` text.
fn real_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads a stream to its end, keeping its last [`OUTPUT_TAIL`] bytes.
fn tail(mut stream: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * OUTPUT_TAIL {
                    kept.drain(..kept.len() - OUTPUT_TAIL);
                }
            }
        }
    }
    if kept.len() > OUTPUT_TAIL {
        kept.drain(..kept.len() - OUTPUT_TAIL);
    }
    kept
}

/// The CPU seconds of an exited, unreaped process and of the children it reaped, from
/// `/proc/PID/stat` (fields 14 to 17, in clock ticks); 0 where unreadable.
fn cpu_seconds(pid: Pid) -> f64 {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    parse_cpu_ticks(&stat).map_or(0.0, |t| t as f64 / ticks)
}

/// utime + stime + cutime + cstime of a `/proc/PID/stat` line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) is index 11.
    (11..15).map(|i| fields.get(i)?.parse::<u64>().ok()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_name() {
        let stat = "42 (py (x) 3) Z 1 42 42 0 -1 4194560 100 0 0 0 150 25 7 3 20 0 1 0";
        assert_eq!(parse_cpu_ticks(stat), Some(150 + 25 + 7 + 3));
        assert_eq!(parse_cpu_ticks("42 (py) Z 1"), None);
    }

    #[test]
    fn real_uids_are_read_from_status() {
        let status = "Name:\tpython3\nState:\tZ (zombie)\nUid:\t61000\t61000\t61000\t61000\n";
        assert_eq!(real_uid(status), Some(61000));
        assert_eq!(real_uid("Name:\tx\n"), None);
        assert_eq!(processes_of(u32::MAX - 7), 0);
    }

    #[test]
    fn tails_keep_the_last_bytes() {
        let data: Vec<u8> = (0..3 * OUTPUT_TAIL).map(|i| (i % 251) as u8).collect();
        let kept = tail(&data[..]);
        assert_eq!(kept.len(), OUTPUT_TAIL);
        assert_eq!(&kept[..], &data[data.len() - OUTPUT_TAIL..]);
    }
}
