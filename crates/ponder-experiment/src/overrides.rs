//! Dotted `--set key=value` overrides of a config, applied to its TOML value before the typed
//! parse, so that the types check every value. An override names a key of a table the resolved
//! config already has; a key the table lacks is added (an optional key such as
//! `fast.chunks_per_window`), and the typed parse, which refuses unknown keys, names a typo.

use crate::error::{Error, Result};

/// Sets `dotted.key` in `value` to the parsed right-hand side of `spec` (`key=value`, the value
/// read as TOML, or as a string when it is not TOML). Every table on the way must exist; the last
/// key is added when its table lacks it, and then `Ok(true)` says so.
pub fn apply(value: &mut toml::Value, spec: &str) -> Result<bool> {
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| Error::Config(format!("--set {spec}: expected key=value")))?;
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let mut cursor = value;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table = cursor.as_table_mut().ok_or_else(|| {
            Error::Config(format!(
                "--set {key}: `{}` is not a table",
                parts[..i].join(".")
            ))
        })?;
        if i + 1 == parts.len() {
            let added = table.insert(part.to_string(), parsed).is_none();
            return Ok(added);
        }
        let slot = table.get_mut(*part).ok_or_else(|| {
            Error::Config(format!(
                "--set {key}: there is no table `{}` in the config",
                parts[..=i].join(".")
            ))
        })?;
        cursor = slot;
    }
    Err(Error::Config(format!("--set {spec}: empty key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value() -> toml::Value {
        toml::from_str("[a]\nb = 1\nc = \"x\"\n[a.d]\ne = [1, 2]\n").unwrap()
    }

    #[test]
    fn sets_existing_keys_with_toml_or_string_values() {
        let mut v = value();
        assert!(!apply(&mut v, "a.b=7").unwrap());
        apply(&mut v, "a.c=plain words").unwrap();
        apply(&mut v, "a.d.e=[3]").unwrap();
        assert!(apply(&mut v, "a.d.f=2").unwrap());
        assert_eq!(v["a"]["d"]["f"].as_integer(), Some(2));
        assert_eq!(v["a"]["b"].as_integer(), Some(7));
        assert_eq!(v["a"]["c"].as_str(), Some("plain words"));
        assert_eq!(v["a"]["d"]["e"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn unknown_tables_and_bad_specs_are_errors_naming_the_key() {
        let mut v = value();
        let e = apply(&mut v, "q.z=1").unwrap_err().to_string();
        assert!(e.contains("there is no table `q`"), "{e}");
        let e = apply(&mut v, "a.b.c=1").unwrap_err().to_string();
        assert!(e.contains("`a.b` is not a table"), "{e}");
        let e = apply(&mut v, "a.b").unwrap_err().to_string();
        assert!(e.contains("expected key=value"), "{e}");
    }
}
