//! What the sandbox reads from the host before it runs anything: the interpreter, and whether
//! the samples' uids belong to a user.

use std::path::{Path, PathBuf};

use super::SANDBOX_PATH;
use crate::error::{CodegenError, Result};

/// The interpreter: the given path, which must exist, or `python3` in [`SANDBOX_PATH`].
pub(super) fn find_python(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = given {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(CodegenError::PythonMissing {
                what: format!("{} does not exist", path.display()),
            })
        };
    }
    SANDBOX_PATH
        .split(':')
        .map(|dir| Path::new(dir).join("python3"))
        .find(|p| p.is_file())
        .ok_or_else(|| CodegenError::PythonMissing {
            what: format!("no python3 in {SANDBOX_PATH} (install it, or name one with --python)"),
        })
}

/// The first line of a passwd file whose uid lies in `uids`, as `name (uid N)`.
pub(super) fn user_of_uids(passwd: &Path, uids: std::ops::RangeInclusive<u32>) -> Option<String> {
    let text = std::fs::read_to_string(passwd).ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let uid: u32 = fields.get(2)?.parse().ok()?;
        uids.contains(&uid)
            .then(|| format!("user {} (uid {uid})", fields[0]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_uids_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nbob:x:60003:60003::/home/bob:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(user_of_uids(&passwd, 60000..=60002), None);
        assert_eq!(
            user_of_uids(&passwd, 60000..=60003).as_deref(),
            Some("user bob (uid 60003)")
        );
    }

    #[test]
    fn a_missing_python_is_named() {
        let err = find_python(Some(Path::new("/nonexistent/python3"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/python3"), "{err}");
    }
}
