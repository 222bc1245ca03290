//! HumanEval's own solutions through the sandbox: all 164 must pass, and a wrong completion of
//! each must not. Needs `data/bench/HumanEval.jsonl.gz` (`cargo xtask data --yes humaneval`,
//! which CI runs) and a machine that can isolate samples; says so and stops where either is
//! missing.

use std::path::Path;

use ponder_codegen::{humaneval, CodegenError, Limits, Outcome, Sandbox, SandboxConfig, Tally};

#[test]
fn every_canonical_solution_passes_and_an_empty_body_fails() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(humaneval::DEFAULT_PATH);
    if !path.exists() {
        eprintln!(
            "SKIPPED: {} is missing (cargo xtask data --yes humaneval)",
            path.display()
        );
        return;
    }
    let problems = humaneval::load(&path).unwrap();
    assert_eq!(problems.len(), humaneval::PROBLEMS);
    let config = SandboxConfig {
        python: None,
        limits: Limits {
            cpu_seconds: 10,
            memory_mib: 2048,
            disk_mib: 64,
            processes: 32,
            open_files: 256,
            wall_seconds: 60,
        },
        uid_base: 62000,
        jobs: 2,
        allow_unisolated: false,
    };
    let sandbox = match Sandbox::new(config) {
        Ok(s) => s,
        Err(CodegenError::Isolation { why }) => {
            eprintln!("SKIPPED: this machine cannot isolate samples: {why}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let canonical: Vec<String> = problems.iter().map(|p| p.canonical_program()).collect();
    let runs = sandbox.run_all(&canonical, || {}).unwrap();
    for (p, e) in problems.iter().zip(&runs) {
        assert_eq!(
            e.outcome,
            Outcome::Passed,
            "{}: {} {}",
            p.task_id,
            e.detail,
            e.stderr
        );
    }
    assert_eq!(Tally::of(&runs).passed, humaneval::PROBLEMS);

    // A body that returns None passes no problem's tests.
    let empty: Vec<String> = problems
        .iter()
        .map(|p| p.program("    return None\n"))
        .collect();
    let runs = sandbox.run_all(&empty, || {}).unwrap();
    let passed: Vec<&str> = problems
        .iter()
        .zip(&runs)
        .filter(|(_, e)| e.outcome == Outcome::Passed)
        .map(|(p, _)| p.task_id.as_str())
        .collect();
    assert!(passed.is_empty(), "passed with `return None`: {passed:?}");
}
