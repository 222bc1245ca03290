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

fn skip_unisolated(out: &std::process::Output) -> bool {
    if !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("cannot isolate samples")
    {
        eprintln!("SKIPPED: {}", String::from_utf8_lossy(&out.stderr));
        return true;
    }
    false
}

#[test]
fn generate_decodes_the_same_with_and_without_the_cache_and_replays_a_seed() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("prompt.py");
    std::fs::write(&prompt, "def add(a, b):\n    \"\"\"Sum.\"\"\"\n").unwrap();
    let p = prompt.to_str().unwrap();
    let base = [
        "generate",
        "--model",
        "tiny-random",
        "--max-new-tokens",
        "12",
        "--no-stop",
    ];
    let cached = ok(&ponder(&[&base[..], &[p]].concat()));
    let uncached = ok(&ponder(&[&base[..], &["--no-cache", p]].concat()));
    assert_eq!(cached, uncached);
    assert!(!cached.trim().is_empty());
    let sampled = [
        &base[..],
        &[
            "--temperature",
            "1.0",
            "--top-p",
            "0.9",
            "--sample-seed",
            "3",
            p,
        ],
    ]
    .concat();
    assert_eq!(ok(&ponder(&sampled)), ok(&ponder(&sampled)));

    let e = err(&ponder(&[
        "generate",
        "--model",
        "tiny-random",
        "--temperature",
        "0",
        p,
    ]));
    assert!(e.contains("temperature"), "{e}");
    let e = err(&ponder(&[
        "generate",
        "--model",
        "tiny-random",
        "/nonexistent/prompt.py",
    ]));
    assert!(e.contains("/nonexistent/prompt.py"), "{e}");
}

#[test]
fn codegen_generates_n_samples_per_problem_and_scores_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("HumanEval.jsonl.gz");
    gz(&data, PROBLEMS);
    let out = dir.path().join("gen");
    let base = [
        "codegen",
        "--bench",
        "humaneval",
        "--quiet",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--sandbox-uid",
        "62110",
        "--jobs",
        "2",
        "--model",
        "tiny-random",
        "--max-new-tokens",
        "16",
    ];
    let result = ponder(
        &[
            &base[..],
            &["--n", "2", "--k", "1,2", "--temperature", "1.0"],
        ]
        .concat(),
    );
    if skip_unisolated(&result) {
        return;
    }
    ok(&result);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let m = &summary["methods"][0];
    assert_eq!(m["method"], "none");
    assert_eq!(m["samples_per_problem"], 2);
    assert_eq!(
        m["tally"]["passed"].as_u64().unwrap()
            + m["tally"]["failed"].as_u64().unwrap()
            + m["tally"]["timed_out"].as_u64().unwrap()
            + m["tally"]["crashed"].as_u64().unwrap(),
        4
    );
    assert_eq!(m["pass_at_k"][1]["k"], 2);
    let samples = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    assert_eq!(samples.lines().count(), 4);

    let e = err(&ponder(&[&base[..], &["--methods", "ours"]].concat()));
    assert!(e.contains("needs a fast layer"), "{e}");
    let e = err(&ponder(&[&base[..], &["--n", "2", "--k", "3"]].concat()));
    assert!(e.contains("pass@3") && e.contains("n = 2"), "{e}");
}

/// A sanitized MBPP row and a ClassEval row in their release formats.
const MBPP: &str = r#"[{"source_file": "Benchmark Questions Verification V2.ipynb", "task_id": 3, "prompt": "Write a python function to identify non-prime numbers.", "code": "import math\ndef is_not_prime(n):\n    result = False\n    for i in range(2,int(math.sqrt(n)) + 1):\n        if n % i == 0:\n            result = True\n    return result", "test_imports": ["import math"], "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True", "assert is_not_prime(35) == True"]}]"#;
const CLASSEVAL: &str = r#"[{"task_id": "ClassEval_0", "skeleton": "import math\n\nclass AreaCalculator:\n    def __init__(self, radius):\n        self.radius = radius\n\n    def calculate_circle_area(self):\n        \"\"\"\n        >>> AreaCalculator(2).calculate_circle_area()\n        12.566370614359172\n        \"\"\"", "test": "import unittest\n\nclass AreaCalculatorTestCalculateCircleArea(unittest.TestCase):\n    def test_1(self):\n        self.assertAlmostEqual(AreaCalculator(2).calculate_circle_area(), 12.566370614359172)\n\n    def test_2(self):\n        self.assertAlmostEqual(AreaCalculator(1).calculate_circle_area(), math.pi)\n", "solution_code": "import math\n\n\nclass AreaCalculator:\n\n    def __init__(self, radius):\n        self.radius = radius\n\n    def calculate_circle_area(self):\n        return math.pi * self.radius ** 2\n", "import_statement": ["import math"], "class_description": "", "methods_info": [], "class_name": "AreaCalculator", "test_classes": ["AreaCalculatorTestCalculateCircleArea"], "class_constructor": "", "fields": ["self.radius"]}]"#;

#[test]
fn mbpp_and_classeval_releases_run_through_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    for (bench, text, wrong) in [
        ("mbpp", MBPP, ("result = True", "result = False")),
        (
            "classeval",
            CLASSEVAL,
            ("math.pi * self.radius ** 2", "math.pi * self.radius"),
        ),
    ] {
        for (name, text) in [
            ("right", text.to_string()),
            ("wrong", text.replace(wrong.0, wrong.1)),
        ] {
            let data = dir.path().join(format!("{bench}-{name}.json"));
            std::fs::write(&data, text).unwrap();
            let out = dir.path().join(format!("{bench}-{name}"));
            let result = ponder(&[
                "codegen",
                "--bench",
                bench,
                "--canonical",
                "--quiet",
                "--data",
                data.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--sandbox-uid",
                "62120",
                "--jobs",
                "1",
            ]);
            if skip_unisolated(&result) {
                return;
            }
            ok(&result);
            let summary: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                    .unwrap();
            let passed = summary["methods"][0]["tally"]["passed"].as_u64().unwrap();
            assert_eq!(passed, u64::from(name == "right"), "{bench} {name}");
        }
    }
    let e = err(&ponder(&[
        "codegen",
        "--bench",
        "mbpp",
        "--canonical",
        "--out",
        "x",
    ]));
    assert!(
        e.contains("needs --data") && e.contains("sanitized-mbpp.json"),
        "{e}"
    );
}
