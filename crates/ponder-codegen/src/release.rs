//! Reading a benchmark's released file: JSON Lines or one JSON array (`.json`, `.jsonl`, either
//! gzipped), or the Hugging Face Hub's Parquet conversion (`.parquet`, list columns included),
//! each row deserialized into the benchmark's row type with unknown keys refused, and every error
//! naming the file and the line or row.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use serde::de::DeserializeOwned;

use crate::error::{CodegenError, Result};

/// The rows of `path`; `what` names the row's keys for the error message.
pub(crate) fn rows<T: DeserializeOwned>(path: &Path, what: &str) -> Result<Vec<T>> {
    let format = |what: String| CodegenError::Format {
        path: path.to_path_buf(),
        what,
    };
    let file = std::fs::File::open(path).map_err(|source| CodegenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let rows = if path.extension().is_some_and(|e| e == "parquet") {
        typed(parquet_values(file, &format)?, what, &format)?
    } else {
        let mut reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(|e| format(format!("{e} (truncated, not gzip, or not UTF-8?)")))?;
        if text.trim_start().starts_with('[') {
            let values: Vec<serde_json::Value> = serde_json::from_str(&text)
                .map_err(|e| format(format!("not a JSON array of rows: {e}")))?;
            typed(values, what, &format)?
        } else {
            let mut rows = Vec::new();
            for (i, line) in BufReader::new(text.as_bytes()).lines().enumerate() {
                let line = line.map_err(|e| format(format!("line {}: {e}", i + 1)))?;
                if line.trim().is_empty() {
                    continue;
                }
                rows.push(
                    serde_json::from_str(&line)
                        .map_err(|e| format(format!("line {}: not a row of {what}: {e}", i + 1)))?,
                );
            }
            rows
        }
    };
    if rows.is_empty() {
        return Err(format("no problems in the file".into()));
    }
    Ok(rows)
}

/// Each JSON row as a row of `T`, an error naming the row otherwise.
fn typed<T: DeserializeOwned>(
    values: Vec<serde_json::Value>,
    what: &str,
    format: &impl Fn(String) -> CodegenError,
) -> Result<Vec<T>> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v)
                .map_err(|e| format(format!("row {}: not a row of {what}: {e}", i + 1)))
        })
        .collect()
}

/// The rows of an open Parquet file, each as the JSON object of its columns. The parquet crate may
/// panic on a corrupt file; that is caught and reported as the file's error.
fn parquet_values(
    file: std::fs::File,
    format: &impl Fn(String) -> CodegenError,
) -> Result<Vec<serde_json::Value>> {
    use parquet::file::reader::SerializedFileReader;

    let read = || -> Result<Vec<serde_json::Value>> {
        let reader = SerializedFileReader::new(file)
            .map_err(|e| format(format!("not a Parquet file: {e}")))?;
        reader
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                row.map(|r| r.to_json_value())
                    .map_err(|e| format(format!("row {}: {e}", i + 1)))
            })
            .collect()
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(read))
        .map_err(|_| format("the Parquet reader failed on this file (corrupt?)".into()))?
}
