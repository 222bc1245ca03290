//! The Hub's Parquet conversions of MBPP and ClassEval read into the same problems as their JSON
//! releases (fixtures written by `tests/fixtures/gen_parquet.py` from `releases.json`), and a
//! damaged Parquet file is a named error.

use std::path::{Path, PathBuf};

use ponder_codegen::{classeval, mbpp, Problem};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `releases.json`'s rows of `key`, written as a JSON release file.
fn json_release(dir: &Path, key: &str) -> PathBuf {
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("releases.json")).unwrap()).unwrap();
    let path = dir.join(format!("{key}.json"));
    std::fs::write(&path, all[key].to_string()).unwrap();
    path
}

#[test]
fn parquet_and_json_releases_give_the_same_problems() {
    let dir = tempfile::tempdir().unwrap();
    let from_json: Vec<Problem> = mbpp::load(&json_release(dir.path(), "mbpp")).unwrap();
    let from_parquet = mbpp::load(&fixture("mbpp_sanitized.parquet")).unwrap();
    assert_eq!(from_parquet, from_json);
    assert_eq!(from_parquet[0].task_id, "Mbpp/3");
    assert_eq!(from_parquet[1].entry_point, "similar_elements");

    let from_json = classeval::load(&json_release(dir.path(), "classeval")).unwrap();
    let from_parquet = classeval::load(&fixture("classeval.parquet")).unwrap();
    assert_eq!(from_parquet, from_json);
    assert_eq!(from_parquet[0].entry_point, "AreaCalculator");
}

#[test]
fn a_damaged_parquet_file_is_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("mbpp_sanitized.parquet")).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = mbpp::load(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.parquet"), "{e}");
    // ClassEval's rows are not MBPP's.
    let e = mbpp::load(&fixture("classeval.parquet"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("classeval.parquet") && e.contains("row 1"),
        "{e}"
    );
}
