//! The rows of a Parquet dataset file, read one row group at a time with the `parquet` crate's
//! column readers (no Arrow): only the content column and, when configured, the language column
//! are decoded.
//!
//! The columns must be top-level `BYTE_ARRAY` columns, annotated as UTF-8 strings or not at all
//! (text that is not UTF-8 is then skipped as [`crate::SkipReason::NotText`]); nulls come from
//! the definition levels.

use std::path::Path;

use parquet::basic::{ConvertedType, LogicalType, Repetition, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::data_type::ByteArray;
use parquet::file::reader::{FileReader, RowGroupReader, SerializedFileReader};
use parquet::schema::types::{SchemaDescriptor, Type};

use super::{HfColumns, Rows};
use crate::error::{Error, Result};

/// A string column chosen from the schema.
#[derive(Debug, Clone, Copy)]
struct StringColumn {
    /// Its index among the leaf columns.
    idx: usize,
    /// Its maximum definition level: 0 when it is required, 1 when it may be null.
    max_def_level: i16,
}

/// Feeds every row of the Parquet file at `path` to `rows`, in file order.
///
/// The `parquet` crate asserts on some corrupt inputs (a negative offset in the footer, a
/// dictionary-encoded page without a dictionary), so a panic while reading is caught and reported
/// as corrupt data naming the file, like the errors it returns. `rows` is then half-filled and
/// must be dropped.
pub(super) fn read_rows(path: &Path, columns: &HfColumns, rows: &mut Rows<'_>) -> Result<()> {
    catching_panics(path, || read_rows_unguarded(path, columns, rows))
}

/// Runs `read` (which reads the Parquet file at `path`), reporting a panic of the `parquet`
/// crate as corrupt data naming the file.
pub(super) fn catching_panics<T>(path: &Path, read: impl FnOnce() -> Result<T>) -> Result<T> {
    let read = std::panic::AssertUnwindSafe(read);
    std::panic::catch_unwind(read).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::BadDataset {
            path: path.to_path_buf(),
            reason: format!("corrupt Parquet data (the parquet crate panicked: {message})"),
        })
    })
}

/// Opens the Parquet file at `path`: an I/O error, or a file that is not Parquet, names it.
pub(super) fn open(path: &Path) -> Result<SerializedFileReader<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    SerializedFileReader::new(file).map_err(|e| Error::BadDataset {
        path: path.to_path_buf(),
        reason: format!("not a readable Parquet file ({e})"),
    })
}

fn read_rows_unguarded(path: &Path, columns: &HfColumns, rows: &mut Rows<'_>) -> Result<()> {
    let bad = |reason: String| Error::BadDataset {
        path: path.to_path_buf(),
        reason,
    };
    let reader = open(path)?;
    let schema = reader.metadata().file_metadata().schema_descr();
    let content = string_column(schema, &columns.content).map_err(bad)?;
    let lang = match &columns.language {
        Some(col) => Some(string_column(schema, col).map_err(bad)?),
        None => None,
    };
    let mut row_no = 0;
    for rg_idx in 0..reader.num_row_groups() {
        let corrupt = |e: String| bad(format!("row group {rg_idx}: corrupt Parquet data ({e})"));
        let rg = reader
            .get_row_group(rg_idx)
            .map_err(|e| corrupt(e.to_string()))?;
        let n_rows = usize::try_from(rg.metadata().num_rows())
            .map_err(|_| corrupt(format!("{} rows", rg.metadata().num_rows())))?;
        let texts = read_column(&*rg, content, n_rows).map_err(corrupt)?;
        let langs = match lang {
            Some(col) => Some(read_column(&*rg, col, n_rows).map_err(corrupt)?),
            None => None,
        };
        for (row_idx, text) in texts.iter().enumerate() {
            row_no += 1;
            let lang = langs
                .as_ref()
                .and_then(|l| l[row_idx].as_ref())
                .and_then(|b| std::str::from_utf8(b.data()).ok());
            rows.push(row_no, lang, text.as_ref().map(ByteArray::data));
        }
    }
    Ok(())
}

/// The top-level string column `name`, or why it cannot be read.
fn string_column(
    schema: &SchemaDescriptor,
    name: &str,
) -> std::result::Result<StringColumn, String> {
    let fields = schema.root_schema().get_fields();
    let Some(field) = fields.iter().find(|f| f.name() == name) else {
        let present: Vec<String> = fields.iter().map(|f| format!("`{}`", f.name())).collect();
        return Err(format!(
            "no column `{name}` (the file's columns are {})",
            present.join(", ")
        ));
    };
    if !is_string(field) {
        return Err(format!(
            "column `{name}` has type {}, not string",
            describe(field)
        ));
    }
    let idx = schema
        .columns()
        .iter()
        .position(|c| c.path().parts() == [name])
        .ok_or_else(|| format!("column `{name}` has no data column of its own"))?;
    Ok(StringColumn {
        idx,
        max_def_level: schema.column(idx).max_def_level(),
    })
}

/// Whether `field` holds at most one string (or unannotated bytes) per row.
fn is_string(field: &Type) -> bool {
    let info = field.get_basic_info();
    field.is_primitive()
        && field.get_physical_type() == PhysicalType::BYTE_ARRAY
        && !(info.has_repetition() && info.repetition() == Repetition::REPEATED)
        && matches!(info.logical_type_ref(), None | Some(LogicalType::String))
        && matches!(
            info.converted_type(),
            ConvertedType::NONE | ConvertedType::UTF8
        )
}

/// A field's type for messages: `INT64`, `BYTE_ARRAY (Json)`, `group (List)`, …
fn describe(field: &Type) -> String {
    let info = field.get_basic_info();
    let mut kind = if field.is_primitive() {
        field.get_physical_type().to_string()
    } else {
        "group".to_string()
    };
    match (info.logical_type_ref(), info.converted_type()) {
        (Some(logical), _) => kind.push_str(&format!(" ({logical:?})")),
        (None, ConvertedType::NONE) => {}
        (None, converted) => kind.push_str(&format!(" ({converted})")),
    }
    if info.has_repetition() && info.repetition() == Repetition::REPEATED {
        kind = format!("repeated {kind}");
    }
    kind
}

/// The `n_rows` values of `col` in one row group, `None` where null.
fn read_column(
    rg: &dyn RowGroupReader,
    col: StringColumn,
    n_rows: usize,
) -> std::result::Result<Vec<Option<ByteArray>>, String> {
    let reader = rg.get_column_reader(col.idx).map_err(|e| e.to_string())?;
    let ColumnReader::ByteArrayColumnReader(mut reader) = reader else {
        return Err("the column chunk is not of type BYTE_ARRAY".into());
    };
    let mut def_levels = Vec::new();
    let mut values = Vec::new();
    let mut n_read = 0;
    while n_read < n_rows {
        let (n_records, _, _) = reader
            .read_records(n_rows - n_read, Some(&mut def_levels), None, &mut values)
            .map_err(|e| e.to_string())?;
        if n_records == 0 {
            break;
        }
        n_read += n_records;
    }
    if n_read != n_rows {
        return Err(format!("a column chunk holds {n_read} of {n_rows} rows"));
    }
    if col.max_def_level == 0 {
        return Ok(values.into_iter().map(Some).collect());
    }
    let n_present = def_levels
        .iter()
        .filter(|&&d| d == col.max_def_level)
        .count();
    if def_levels.len() != n_rows || n_present != values.len() {
        return Err(format!(
            "{} levels and {} values for {n_rows} rows",
            def_levels.len(),
            values.len()
        ));
    }
    let mut values = values.into_iter();
    Ok(def_levels
        .iter()
        .map(|&d| (d == col.max_def_level).then(|| values.next()).flatten())
        .collect())
}
