//! MBPP, the sanitized test set (Austin et al., 2021): 427 hand-verified problems, each a
//! one-line description, a reference function and assert statements. Read from its release
//! format (`sanitized-mbpp.json`, rows of `source_file, task_id, prompt, code, test_imports,
//! test_list`), a local file or one fetched through the Hub cache.
//!
//! The prompt is the completion-style prompt of code-generation harnesses for base models: the
//! description and the first test in a docstring, after which the model writes the function.
//! The entry point is the function of the reference code that the first test calls (not a fixed
//! name), and the program runs the test imports and every assert after the completion.

use std::path::Path;

use serde::Deserialize;

use crate::error::{CodegenError, Result};
use crate::humaneval::check_testable;
use crate::problem::{Bench, Harness, Problem};
use crate::release;

/// One row of the sanitized release.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    #[allow(dead_code)] // part of the format; not needed to test a sample
    source_file: String,
    task_id: u64,
    prompt: String,
    code: String,
    test_imports: Vec<String>,
    test_list: Vec<String>,
}

/// Reads every problem of a sanitized MBPP file (JSON array or JSON Lines, optionally gzipped).
pub fn load(path: &Path) -> Result<Vec<Problem>> {
    let rows: Vec<Row> = release::rows(
        path,
        "sanitized MBPP (source_file, task_id, prompt, code, test_imports, test_list)",
    )?;
    rows.into_iter().map(problem).collect()
}

fn problem(row: Row) -> Result<Problem> {
    let task_id = format!("Mbpp/{}", row.task_id);
    let Some(first_test) = row.test_list.first() else {
        return Err(CodegenError::Problem {
            task_id,
            what: "no tests (test_list is empty)".into(),
        });
    };
    let entry_point =
        called_function(&row.code, first_test).ok_or_else(|| CodegenError::Problem {
            task_id: task_id.clone(),
            what: format!(
                "none of the reference code's functions is called by its first test `{first_test}`"
            ),
        })?;
    let prompt = format!("\"\"\"\n{}\n{first_test}\n\"\"\"\n", row.prompt.trim());
    let mut test = String::new();
    for line in row.test_imports.iter().chain(&row.test_list) {
        test.push_str(line);
        test.push('\n');
    }
    let problem = Problem {
        bench: Bench::Mbpp,
        task_id,
        program_prefix: prompt.clone(),
        prompt,
        entry_point,
        test,
        canonical_solution: row.code,
        harness: Harness::Statements,
    };
    check_testable(&problem, "assert")?;
    Ok(problem)
}

/// The first function defined at the top level of `code` whose call appears in `test`.
fn called_function(code: &str, test: &str) -> Option<String> {
    code.lines()
        .filter_map(|l| l.strip_prefix("def "))
        .filter_map(|rest| rest.split('(').next())
        .map(str::trim)
        .find(|name| !name.is_empty() && test.contains(&format!("{name}(")))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rows as the sanitized release writes them.
    const RELEASE: &str = r#"[
 {"source_file": "Benchmark Questions Verification V2.ipynb", "task_id": 2, "prompt": "Write a function to find the shared elements from the given two lists.", "code": "def similar_elements(test_tup1, test_tup2):\n  res = tuple(set(test_tup1) & set(test_tup2))\n  return (res) ", "test_imports": [], "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))", "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))"]},
 {"source_file": "Benchmark Questions Verification V2.ipynb", "task_id": 3, "prompt": "Write a python function to identify non-prime numbers.", "code": "import math\ndef helper(n):\n    return n\ndef is_not_prime(n):\n    result = False\n    for i in range(2,int(math.sqrt(n)) + 1):\n        if n % i == 0:\n            result = True\n    return result", "test_imports": ["import math"], "test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True"]}
]"#;

    #[test]
    fn reads_the_sanitized_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sanitized-mbpp.json");
        std::fs::write(&path, RELEASE).unwrap();
        let p = load(&path).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].task_id, "Mbpp/2");
        assert_eq!(p[0].entry_point, "similar_elements");
        assert_eq!(p[1].entry_point, "is_not_prime");
        assert!(p[0]
            .prompt
            .starts_with("\"\"\"\nWrite a function to find the shared elements"));
        assert!(p[0].prompt.ends_with("== set((4, 5))\n\"\"\"\n"));
        let program = p[1].canonical_program();
        assert!(program.contains(
            "import math\nassert is_not_prime(2) == False\nassert is_not_prime(10) == True\n"
        ));
    }

    #[test]
    fn bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbpp.json");
        std::fs::write(&path, RELEASE.replace(r#""test_list": ["assert is_not_prime(2) == False", "assert is_not_prime(10) == True"]"#, r#""test_list": []"#)).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("Mbpp/3") && e.contains("no tests"), "{e}");
        std::fs::write(&path, RELEASE.replace("\"code\"", "\"solution\"")).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("mbpp.json") && e.contains("row 1"), "{e}");
        std::fs::write(&path, RELEASE.replace("similar_elements((3", "other((3")).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("Mbpp/2") && e.contains("first test"), "{e}");
    }
}
