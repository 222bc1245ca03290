//! ClassEval (Du et al., 2023): 100 Python classes, each a skeleton (imports, the class with
//! its fields and every method's signature and docstring) to implement whole, unittest test
//! classes and a reference implementation. Read from its release format (`ClassEval_data.json`),
//! a local file or one fetched through the Hub cache.
//!
//! The model sees the skeleton and writes the whole class (holistic generation); the program is
//! the import statements, the completion and the test classes, run by unittest.

use std::path::Path;

use serde::Deserialize;

use crate::error::Result;
use crate::humaneval::check_testable;
use crate::problem::{Bench, Harness, Problem};
use crate::release;

/// One row of the release; the fields the harness does not need are kept as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the descriptive fields are part of the format, not needed to test a sample
struct Row {
    task_id: String,
    skeleton: String,
    test: String,
    solution_code: String,
    import_statement: Vec<String>,
    class_description: String,
    methods_info: serde_json::Value,
    class_name: String,
    test_classes: Vec<String>,
    class_constructor: String,
    fields: serde_json::Value,
}

/// Reads every problem of a ClassEval file (JSON array or JSON Lines, optionally gzipped).
pub fn load(path: &Path) -> Result<Vec<Problem>> {
    let rows: Vec<Row> = release::rows(
        path,
        "ClassEval (task_id, skeleton, test, solution_code, import_statement, class_name, test_classes, …)",
    )?;
    rows.into_iter()
        .map(|row| {
            let mut imports = String::new();
            for line in &row.import_statement {
                imports.push_str(line);
                imports.push('\n');
            }
            let problem = Problem {
                bench: Bench::ClassEval,
                task_id: row.task_id,
                prompt: row.skeleton,
                program_prefix: imports,
                entry_point: row.class_name,
                test: row.test,
                canonical_solution: row.solution_code,
                harness: Harness::Unittest,
            };
            check_testable(&problem, "unittest.TestCase")?;
            Ok(problem)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row as the release writes it.
    const RELEASE: &str = r#"[{"task_id": "ClassEval_0", "skeleton": "import math\n\nclass AreaCalculator:\n    \"\"\"\n    Calculates areas.\n    \"\"\"\n\n    def __init__(self, radius):\n        self.radius = radius\n\n    def calculate_circle_area(self):\n        \"\"\"\n        >>> AreaCalculator(2).calculate_circle_area()\n        12.566370614359172\n        \"\"\"", "test": "import unittest\n\nclass AreaCalculatorTestCalculateCircleArea(unittest.TestCase):\n    def test_1(self):\n        self.assertAlmostEqual(AreaCalculator(2).calculate_circle_area(), 12.566370614359172)\n", "solution_code": "import math\n\n\nclass AreaCalculator:\n\n    def __init__(self, radius):\n        self.radius = radius\n\n    def calculate_circle_area(self):\n        return math.pi * self.radius ** 2\n", "import_statement": ["import math"], "class_description": "    \"\"\"\n    Calculates areas.\n    \"\"\"\n", "methods_info": [{"method_name": "calculate_circle_area", "method_description": "...", "test_class": "AreaCalculatorTestCalculateCircleArea", "test_code": "...", "solution_code": "...", "dependencies": {"Standalone": false, "lib_dependencies": ["math"], "field_dependencies": ["self.radius"], "method_dependencies": []}}], "class_name": "AreaCalculator", "test_classes": ["AreaCalculatorTestCalculateCircleArea"], "class_constructor": "class AreaCalculator: \n    def __init__(self, radius):\n        self.radius = radius\n", "fields": ["self.radius"]}]"#;

    #[test]
    fn reads_the_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ClassEval_data.json");
        std::fs::write(&path, RELEASE).unwrap();
        let p = load(&path).unwrap();
        assert_eq!(
            (p[0].task_id.as_str(), p[0].entry_point.as_str()),
            ("ClassEval_0", "AreaCalculator")
        );
        assert!(p[0]
            .prompt
            .starts_with("import math\n\nclass AreaCalculator:"));
        let program = p[0].canonical_program();
        assert!(program.starts_with("import math\nimport math\n\n\nclass AreaCalculator:"));
        assert!(program.contains("unittest.main(module=\"__main__\""));
        std::fs::write(&path, RELEASE.replace("unittest.TestCase", "object")).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("ClassEval_0") && e.contains("unittest.TestCase"),
            "{e}"
        );
    }
}
