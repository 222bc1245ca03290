//! Programming languages ponder reads, with their file extensions.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A source language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Python (`.py`).
    Python,
    /// JavaScript (`.js`, `.mjs`, `.cjs`).
    JavaScript,
    /// Java (`.java`).
    Java,
    /// Go (`.go`).
    Go,
    /// Rust (`.rs`).
    Rust,
}

impl Language {
    /// Every language, in a fixed order.
    pub const ALL: [Language; 5] = [
        Language::Python,
        Language::JavaScript,
        Language::Java,
        Language::Go,
        Language::Rust,
    ];

    /// File extensions of the language, without the dot.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Language::Python => &["py"],
            Language::JavaScript => &["js", "mjs", "cjs"],
            Language::Java => &["java"],
            Language::Go => &["go"],
            Language::Rust => &["rs"],
        }
    }

    /// The lower-case name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Language::Python => "python",
            Language::JavaScript => "javascript",
            Language::Java => "java",
            Language::Go => "go",
            Language::Rust => "rust",
        }
    }

    /// The language by name (case-insensitive; `js` is accepted for JavaScript).
    pub fn parse(name: &str) -> Option<Language> {
        match name.to_ascii_lowercase().as_str() {
            "python" | "py" => Some(Language::Python),
            "javascript" | "js" => Some(Language::JavaScript),
            "java" => Some(Language::Java),
            "go" | "golang" => Some(Language::Go),
            "rust" | "rs" => Some(Language::Rust),
            _ => None,
        }
    }

    /// Whether `path` has one of the language's extensions.
    pub fn matches(self, path: &Path) -> bool {
        path.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| self.extensions().contains(&e))
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_extensions() {
        for lang in Language::ALL {
            assert_eq!(Language::parse(lang.name()), Some(lang));
        }
        assert_eq!(Language::parse("JS"), Some(Language::JavaScript));
        assert_eq!(Language::parse("cobol"), None);
        assert!(Language::Python.matches(Path::new("a/b.py")));
        assert!(Language::JavaScript.matches(Path::new("x.mjs")));
        assert!(!Language::Go.matches(Path::new("go.mod")));
    }
}
