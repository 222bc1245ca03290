//! The repository rows of a `the-stack-v2-train-full-ids` Parquet file, read with the `parquet`
//! crate's record API (no Arrow), projected on the `files` column: a list of structs, of which
//! `blob_id` and `language` must be strings and `src_encoding` and `path` may be (null or absent
//! counts as unknown).

use std::path::Path;

use parquet::file::reader::FileReader;
use parquet::record::{Field, Row};
use parquet::schema::types::Type;

use super::stack_v2::{StackV2File, StackV2Slice};
use crate::error::{Error, Result};

/// The files whose `language` is `stack_name` in the Parquet file at `path`, in stream order,
/// after `slice.skip` of them and at most `slice.max_files`.
pub(super) fn read_ids(
    path: &Path,
    stack_name: &str,
    slice: StackV2Slice,
) -> Result<Vec<StackV2File>> {
    let bad = |reason: String| Error::BadDataset {
        path: path.to_path_buf(),
        reason,
    };
    let reader = super::parquet::open(path)?;
    let schema = reader.metadata().file_metadata().schema_descr();
    check_schema(schema).map_err(&bad)?;
    let files_field = schema
        .root_schema()
        .get_fields()
        .iter()
        .find(|f| f.name() == "files")
        .cloned()
        .ok_or_else(|| bad("no column `files`".into()))?;
    let projection = Type::group_type_builder("schema")
        .with_fields(vec![files_field])
        .build()
        .map_err(|e| bad(format!("cannot project on `files` ({e})")))?;
    let rows = reader
        .get_row_iter(Some(projection))
        .map_err(|e| bad(format!("cannot read the `files` column ({e})")))?;
    let limit = slice.max_files.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut index = 0;
    for (row_idx, row) in rows.enumerate() {
        if out.len() >= limit {
            break;
        }
        let row_no = row_idx + 1;
        let row = row.map_err(|e| bad(format!("row {row_no}: corrupt Parquet data ({e})")))?;
        for (file_idx, file) in files_of(&row).map_err(|e| bad(format!("row {row_no}: {e}")))? {
            let at = |e: String| bad(format!("row {row_no}, file {}: {e}", file_idx + 1));
            if string_field(file, "language", true).map_err(at)? != Some(stack_name) {
                continue;
            }
            index += 1;
            if index <= slice.skip {
                continue;
            }
            if out.len() >= limit {
                break;
            }
            let blob_id = string_field(file, "blob_id", true)
                .map_err(at)?
                .ok_or_else(|| at("`blob_id` is null".into()))?;
            out.push(StackV2File {
                index,
                row: row_no,
                blob_id: blob_id.to_string(),
                path: string_field(file, "path", false)
                    .map_err(at)?
                    .map(String::from),
                src_encoding: string_field(file, "src_encoding", false)
                    .map_err(at)?
                    .map(String::from),
            });
        }
    }
    Ok(out)
}

/// Checks that `files` is a column whose leaves include `blob_id` and `language`.
fn check_schema(
    schema: &parquet::schema::types::SchemaDescriptor,
) -> std::result::Result<(), String> {
    let fields = schema.root_schema().get_fields();
    if !fields.iter().any(|f| f.name() == "files") {
        let present: Vec<String> = fields.iter().map(|f| format!("`{}`", f.name())).collect();
        return Err(format!(
            "no column `files` (the file's columns are {}); expected a repository row of \
             bigcode/the-stack-v2-train-full-ids",
            present.join(", ")
        ));
    }
    let leaves: Vec<String> = schema
        .columns()
        .iter()
        .filter(|c| c.path().parts().first().map(String::as_str) == Some("files"))
        .filter_map(|c| c.path().parts().last().cloned())
        .collect();
    for needed in ["blob_id", "language"] {
        if !leaves.iter().any(|l| l == needed) {
            let present: Vec<String> = leaves.iter().map(|l| format!("`{l}`")).collect();
            return Err(format!(
                "column `files` has no field `{needed}` (its fields are {})",
                present.join(", ")
            ));
        }
    }
    Ok(())
}

/// The structs of the row's `files` list with their 0-based positions (none when it is null).
fn files_of(row: &Row) -> std::result::Result<Vec<(usize, &Row)>, String> {
    let Some((_, field)) = row.get_column_iter().find(|(name, _)| *name == "files") else {
        return Err("no `files` value".into());
    };
    let elements = match field {
        Field::Null => return Ok(Vec::new()),
        Field::ListInternal(list) => list.elements(),
        other => return Err(format!("`files` is {other}, not a list")),
    };
    elements
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e, Field::Null))
        .map(|(i, e)| match e {
            Field::Group(file) => Ok((i, file)),
            other => Err(format!(
                "file {} of `files` is {other}, not a struct",
                i + 1
            )),
        })
        .collect()
}

/// The string field `name` of a file struct: `None` when null, or when absent and not
/// `required`; an error when of another type.
fn string_field<'r>(
    file: &'r Row,
    name: &str,
    required: bool,
) -> std::result::Result<Option<&'r str>, String> {
    match file.get_column_iter().find(|(n, _)| *n == name) {
        Some((_, Field::Str(s))) => Ok(Some(s)),
        Some((_, Field::Bytes(b))) => std::str::from_utf8(b.data())
            .map(Some)
            .map_err(|_| format!("`{name}` is not UTF-8")),
        Some((_, Field::Null)) => Ok(None),
        Some((_, other)) => Err(format!("`{name}` is {other}, not a string")),
        None if required => Err(format!("no field `{name}`")),
        None => Ok(None),
    }
}
