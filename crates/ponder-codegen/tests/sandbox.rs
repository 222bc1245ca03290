//! Planted samples: each must fail cleanly without touching the host, and the sandbox must go on
//! to the next sample. Every test uses its own uids, since the sandbox kills every process of a
//! sample's uid after it. Where this machine cannot isolate (not root, or a kernel that refuses a
//! namespace), the tests check the refusal instead.

use std::path::PathBuf;

use ponder_codegen::{CodegenError, Execution, Limits, Outcome, Sandbox, SandboxConfig};

fn limits() -> Limits {
    Limits {
        cpu_seconds: 1,
        memory_mib: 1024,
        disk_mib: 16,
        processes: 24,
        open_files: 64,
        wall_seconds: 6,
    }
}

/// A sandbox whose slots start at `uid_base`, or `None` (after checking the refusal) where this
/// machine cannot isolate samples.
fn sandbox(uid_base: u32) -> Option<Sandbox> {
    let config = SandboxConfig {
        python: None,
        limits: limits(),
        uid_base,
        jobs: 2,
        allow_unisolated: false,
    };
    match Sandbox::new(config) {
        Ok(s) => {
            assert!(s.is_isolated());
            Some(s)
        }
        Err(CodegenError::Isolation { why }) => {
            assert!(!why.is_empty());
            eprintln!("SKIPPED: this machine cannot isolate samples: {why}");
            None
        }
        Err(e) => panic!("unexpected sandbox error: {e}"),
    }
}

/// Runs `program`, then a passing sample, which must pass: the sandbox goes on.
fn run(uid_base: u32, program: &str) -> Option<Execution> {
    let s = sandbox(uid_base)?;
    let e = s.run(program).unwrap();
    eprintln!(
        "{:?} ({}), stderr: {}",
        e.outcome,
        e.detail,
        e.stderr.trim()
    );
    assert_eq!(
        s.run("assert 1 + 1 == 2\n").unwrap().outcome,
        Outcome::Passed
    );
    assert_eq!(
        processes_of(uid_base),
        0,
        "processes of uid {uid_base} left running"
    );
    Some(e)
}

/// Processes running as `uid`, from `/proc`.
fn processes_of(uid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(uid)
        })
        .count()
}

#[test]
fn passing_failing_and_early_exit() {
    let Some(s) = sandbox(61000) else { return };
    let pass = s
        .run("print('hi')\nassert sorted([3, 1]) == [1, 3]\n")
        .unwrap();
    assert_eq!(pass.outcome, Outcome::Passed, "{}", pass.stderr);
    assert_eq!(pass.stdout, "hi\n");
    let fail = s.run("assert 1 == 2\n").unwrap();
    assert_eq!(
        (fail.outcome, fail.detail.as_str()),
        (Outcome::Failed, "exit 1")
    );
    assert!(fail.stderr.contains("AssertionError"));
    let early = s.run("import sys\nsys.exit(0)\nassert False\n").unwrap();
    assert_eq!(early.outcome, Outcome::Failed);
    assert!(early.detail.contains("before the end"), "{}", early.detail);
    let syntax = s.run("def f(:\n").unwrap();
    assert_eq!(syntax.outcome, Outcome::Failed);
}

#[test]
fn an_infinite_loop_times_out_by_cpu_time() {
    let Some(e) = run(61010, "while True:\n    pass\n") else {
        return;
    };
    assert_eq!(
        (e.outcome, e.detail.as_str()),
        (Outcome::TimedOut, "CPU limit")
    );
    assert!(e.cpu_seconds >= 0.9, "{}", e.cpu_seconds);
    let Some(e) = run(
        61010,
        "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n",
    ) else {
        return;
    };
    assert_eq!(
        (e.outcome, e.detail.as_str()),
        (Outcome::TimedOut, "CPU limit")
    );
}

#[test]
fn a_sleeping_sample_meets_the_wall_backstop() {
    let Some(e) = run(61020, "import time\ntime.sleep(1000)\n") else {
        return;
    };
    assert_eq!(
        (e.outcome, e.detail.as_str()),
        (Outcome::TimedOut, "wall backstop")
    );
    assert!(e.wall_seconds < 10.0, "{}", e.wall_seconds);
}

#[test]
fn a_fork_bomb_is_contained() {
    let program =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    let Some(e) = run(61030, program) else { return };
    assert_eq!(e.outcome, Outcome::TimedOut, "{}", e.detail);
}

#[test]
fn allocating_50_gb_fails() {
    let Some(e) = run(61040, "x = bytearray(50 * 2**30)\n") else {
        return;
    };
    assert_eq!(e.outcome, Outcome::Failed);
    assert!(e.stderr.contains("MemoryError"), "{}", e.stderr);
}

#[test]
fn writing_10_gb_stops_at_the_disk_limit() {
    let program = "block = b'0' * 2**20\nwith open('big', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(block)\n";
    let Some(e) = run(61050, program) else { return };
    assert!(
        matches!(e.outcome, Outcome::Crashed | Outcome::Failed),
        "{e:?}"
    );
    // Nowhere else to write: the rest of the tree is read-only.
    for dir in ["/var/tmp", "/dev/shm", "/root", "/"] {
        let program = format!("open('{dir}/ponder-sandbox-probe', 'w').write('x')\n");
        let Some(e) = run(61050, &program) else {
            return;
        };
        assert_eq!(e.outcome, Outcome::Failed, "{dir}");
        assert!(!std::path::Path::new(&format!("{dir}/ponder-sandbox-probe")).exists());
    }
}

#[test]
fn deleting_outside_its_directory_fails() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let victim: PathBuf = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let program = format!(
        "import os, shutil\ntry:\n    os.remove({v:?})\nfinally:\n    shutil.rmtree({d:?})\n",
        v = victim.display().to_string(),
        d = dir.path().display().to_string()
    );
    let Some(e) = run(61060, &program) else {
        return;
    };
    assert_eq!(e.outcome, Outcome::Failed);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn a_socket_to_a_local_port_goes_nowhere() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let program = format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'leak')\n"
    );
    let Some(e) = run(61070, &program) else {
        return;
    };
    assert_eq!(e.outcome, Outcome::Failed);
    assert!(
        listener.accept().is_err(),
        "the sample reached the host's port"
    );
}

#[test]
fn the_callers_environment_stays_secret() {
    // Cargo puts CARGO_MANIFEST_DIR in this test process's environment.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    let program = "import os\nprint(dict(os.environ))\nfor pid in os.listdir('/proc'):\n    try:\n        print(open(f'/proc/{pid}/environ', 'rb').read())\n    except OSError:\n        pass\n";
    let Some(e) = run(61080, program) else { return };
    assert!(!e.stdout.contains("CARGO_MANIFEST_DIR"), "{}", e.stdout);
    assert!(!e.stderr.contains("CARGO_MANIFEST_DIR"));
    assert_eq!(e.outcome, Outcome::Passed, "{}", e.stderr);
}

#[test]
fn a_segfault_through_ctypes_is_a_crash() {
    let Some(e) = run(61090, "import ctypes\nctypes.string_at(0)\n") else {
        return;
    };
    assert_eq!(
        (e.outcome, e.detail.as_str()),
        (Outcome::Crashed, "signal SIGSEGV")
    );
}

#[test]
fn killing_its_parent_fails() {
    let program = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n";
    let Some(e) = run(61100, program) else { return };
    assert_eq!(e.outcome, Outcome::Failed);
    assert!(e.stderr.contains("PermissionError"), "{}", e.stderr);
    // kill(-1) reaches every process it may signal: only its own uid's, and it spares the
    // caller. Linux reports success when it found processes, even if it could signal none, so
    // the sample runs on to its end, and this test process is still here to see it.
    let program = "import os, signal\nos.kill(-1, signal.SIGKILL)\nos.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n";
    let Some(e) = run(61100, program) else { return };
    assert_eq!(e.outcome, Outcome::Failed);
    assert!(
        e.stderr.contains("line 3") && e.stderr.contains("PermissionError"),
        "{}",
        e.stderr
    );
}

#[test]
fn a_daemon_left_behind_is_killed() {
    let program = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\n";
    let Some(e) = run(61110, program) else { return };
    assert_eq!(e.outcome, Outcome::Passed, "{}", e.stderr);
}

#[test]
fn many_samples_run_in_order_on_a_bounded_pool() {
    let Some(s) = sandbox(61120) else { return };
    let programs: Vec<String> = (0..8)
        .map(|i| format!("print({i})\nassert {i} % 3 != 0\n"))
        .collect();
    let runs = s.run_all(&programs, || {}).unwrap();
    for (i, e) in runs.iter().enumerate() {
        assert_eq!(e.stdout.trim(), i.to_string());
        let expected = if i % 3 == 0 {
            Outcome::Failed
        } else {
            Outcome::Passed
        };
        assert_eq!(e.outcome, expected, "sample {i}");
    }
}

#[test]
fn a_missing_python_is_an_error() {
    let config = SandboxConfig {
        python: Some("/nonexistent/bin/python3".into()),
        limits: limits(),
        uid_base: 61130,
        jobs: 1,
        allow_unisolated: false,
    };
    let err = Sandbox::new(config).unwrap_err();
    assert!(matches!(err, CodegenError::PythonMissing { .. }), "{err}");
}
