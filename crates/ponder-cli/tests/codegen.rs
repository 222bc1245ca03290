//! `ponder codegen` end to end: the benchmark's own solutions through the sandbox on a small
//! HumanEval file in the released format, the files it writes, and clear errors for a missing or
//! truncated benchmark file, `--k` larger than the samples, and a missing interpreter.

mod common;

use std::io::Write;
use std::path::Path;

use common::{err, ok, ponder};

/// Two problems in HumanEval's released format; the second's canonical solution is wrong.
const PROBLEMS: &str = concat!(
    r#"{"task_id": "HumanEval/0", "prompt": "def add(a, b):\n    \"\"\"Sum.\"\"\"\n", "entry_point": "add", "canonical_solution": "    return a + b\n", "test": "\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n"}"#,
    "\n",
    r#"{"task_id": "HumanEval/1", "prompt": "def neg(a):\n", "entry_point": "neg", "canonical_solution": "    return a\n", "test": "\n\ndef check(candidate):\n    assert candidate(1) == -1\n"}"#,
    "\n"
);

fn gz(path: &Path, text: &str) {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    std::fs::write(path, e.finish().unwrap()).unwrap();
}

fn codegen(data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "codegen",
        "--bench",
        "humaneval",
        "--canonical",
        "--quiet",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--sandbox-uid",
        "62100",
        "--jobs",
        "2",
    ];
    args.extend_from_slice(extra);
    ponder(&args)
}

#[test]
fn canonical_solutions_run_through_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("HumanEval.jsonl.gz");
    gz(&data, PROBLEMS);
    let out = dir.path().join("run");
    let result = codegen(&data, &out, &[]);
    if !result.status.success() {
        let e = err(&result);
        if e.contains("cannot isolate samples") {
            eprintln!("SKIPPED: {e}");
            return;
        }
        panic!("{e}");
    }
    let stdout = ok(&result);
    assert!(stdout.contains("HumanEval/1: Failed"), "{stdout}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let m = &summary["methods"][0];
    assert_eq!(m["method"], "canonical");
    assert_eq!(m["tally"]["passed"], 1);
    assert_eq!(m["tally"]["failed"], 1);
    assert_eq!(m["pass_at_k"][0]["estimate"], 0.5);
    let samples = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = samples
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["task_id"], "HumanEval/1");
    assert_eq!(lines[1]["outcome"], "failed");
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");

    let missing = err(&codegen(&dir.path().join("nope.jsonl.gz"), &out, &[]));
    assert!(missing.contains("nope.jsonl.gz"), "{missing}");

    let data = dir.path().join("HumanEval.jsonl.gz");
    gz(&data, PROBLEMS);
    let full = std::fs::read(&data).unwrap();
    let cut = dir.path().join("cut.jsonl.gz");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let truncated = err(&codegen(&cut, &out, &[]));
    assert!(truncated.contains("cut.jsonl.gz"), "{truncated}");

    let wrong = dir.path().join("mbpp.jsonl");
    std::fs::write(
        &wrong,
        "{\"task_id\": 1, \"text\": \"x\", \"code\": \"y\"}\n",
    )
    .unwrap();
    let format = err(&codegen(&wrong, &out, &[]));
    assert!(
        format.contains("mbpp.jsonl") && format.contains("line 1"),
        "{format}"
    );

    let k = err(&codegen(&data, &out, &["--k", "1,10"]));
    assert!(k.contains("pass@10"), "{k}");

    let python = err(&codegen(&data, &out, &["--python", "/nonexistent/python3"]));
    assert!(
        python.contains("python3 not found") && python.contains("/nonexistent/python3"),
        "{python}"
    );
    assert!(!out.exists(), "nothing written on bad input");
}
