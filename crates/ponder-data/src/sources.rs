//! Named sources of real code already on a machine: the Python interpreter's standard library,
//! the crate sources Cargo downloaded to build ponder, Node's global modules, Go's standard
//! library, and the JDK's `src.zip` (read in place). A missing source is an error naming the
//! package that provides it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::corpus::{scan_dir, scan_zip, Corpus, ScanOptions};
use crate::error::{Error, Result};
use crate::lang::Language;

/// A named source of code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NamedSource {
    /// `python-stdlib`: the standard library of `python3`, without its test suites.
    PythonStdlib,
    /// `cargo-registry`: the crate sources under `$CARGO_HOME/registry/src`.
    CargoRegistry,
    /// `npm-global`: Node's global modules (the npm CLI and its dependencies).
    NpmGlobal,
    /// `go-src`: Go's standard library sources.
    GoSrc,
    /// `jdk-src`: the `java.base` module of the JDK's `src.zip`.
    JdkSrc,
}

/// Where to look, as the binary resolves it from the environment.
#[derive(Debug, Clone, Default)]
pub struct SourceHints {
    /// `$CARGO_HOME`, or `~/.cargo`.
    pub cargo_home: Option<PathBuf>,
    /// Where `cargo xtask data` installs the optional corpora (`data/ood`), searched first for
    /// `go-src` and `jdk-src`.
    pub ood_dir: Option<PathBuf>,
    /// The Hugging Face Hub client for `hf:` dataset sources.
    pub hub: Option<ponder_hub::Hub>,
}

impl NamedSource {
    /// Every source, in a fixed order.
    pub const ALL: [NamedSource; 5] = [
        NamedSource::PythonStdlib,
        NamedSource::CargoRegistry,
        NamedSource::NpmGlobal,
        NamedSource::GoSrc,
        NamedSource::JdkSrc,
    ];

    /// The source's name.
    pub fn name(self) -> &'static str {
        match self {
            NamedSource::PythonStdlib => "python-stdlib",
            NamedSource::CargoRegistry => "cargo-registry",
            NamedSource::NpmGlobal => "npm-global",
            NamedSource::GoSrc => "go-src",
            NamedSource::JdkSrc => "jdk-src",
        }
    }

    /// The source by name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The language of the source.
    pub fn language(self) -> Language {
        match self {
            NamedSource::PythonStdlib => Language::Python,
            NamedSource::CargoRegistry => Language::Rust,
            NamedSource::NpmGlobal => Language::JavaScript,
            NamedSource::GoSrc => Language::Go,
            NamedSource::JdkSrc => Language::Java,
        }
    }

    /// How to get the source when it is missing (Debian package names).
    pub fn hint(self) -> &'static str {
        match self {
            NamedSource::PythonStdlib => "install Python 3 (Debian: `apt-get install python3`)",
            NamedSource::CargoRegistry => "build ponder once with cargo, which downloads the crate sources",
            NamedSource::NpmGlobal => "install Node.js and npm (Debian: `apt-get install nodejs npm`)",
            NamedSource::GoSrc => "install Go's sources (Debian: `apt-get install golang-1.19-src`, or `cargo xtask data`)",
            NamedSource::JdkSrc => "install the JDK sources (Debian: `apt-get install openjdk-17-source`, or `cargo xtask data`)",
        }
    }

    /// The scan rules of the source: the standard ones, plus Python's test suites excluded,
    /// npm's own `node_modules` kept, and only `java.base` of the JDK.
    pub fn scan_options(self) -> ScanOptions {
        let mut o = ScanOptions::standard();
        match self {
            NamedSource::PythonStdlib => o
                .excluded_dirs
                .extend(["test", "tests", "idle_test"].map(String::from)),
            NamedSource::NpmGlobal => o.excluded_dirs.retain(|d| d != "node_modules"),
            NamedSource::JdkSrc => o.only_under = Some("java.base/".into()),
            NamedSource::CargoRegistry | NamedSource::GoSrc => {}
        }
        o
    }

    /// The folder (or archive) of the source on this machine.
    pub fn locate(self, hints: &SourceHints) -> Result<PathBuf> {
        let found = match self {
            NamedSource::PythonStdlib => command_line(
                "python3",
                &[
                    "-c",
                    "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
                ],
            )
            .or_else(|| first_glob("/usr/lib", |n| n.starts_with("python3."), "")),
            NamedSource::CargoRegistry => hints
                .cargo_home
                .as_ref()
                .map(|h| h.join("registry").join("src")),
            NamedSource::NpmGlobal => command_line("npm", &["root", "-g"])
                .or_else(|| Some(PathBuf::from("/usr/lib/node_modules")))
                .map(|p| p.join("npm")),
            NamedSource::GoSrc => ood(hints, "go/usr/share", |n| n.starts_with("go-"), "src")
                .or_else(|| command_line("go", &["env", "GOROOT"]).map(|p| p.join("src")))
                .or_else(|| first_glob("/usr/share", |n| n.starts_with("go-"), "src"))
                .or_else(|| first_glob("/usr/lib", |n| n.starts_with("go-"), "src")),
            NamedSource::JdkSrc => ood(
                hints,
                "jdk/usr/lib/jvm",
                |n| n.starts_with("openjdk-17"),
                "lib/src.zip",
            )
            .or_else(|| {
                first_glob(
                    "/usr/lib/jvm",
                    |n| n.starts_with("java-17-openjdk"),
                    "lib/src.zip",
                )
            })
            .or_else(|| first_glob("/usr/lib/jvm", |_| true, "lib/src.zip")),
        };
        match found {
            Some(p) if p.exists() => Ok(p),
            other => Err(Error::SourceMissing {
                name: self.name().into(),
                reason: match other {
                    Some(p) => format!("{} does not exist", p.display()),
                    None => "not found on this machine".into(),
                },
                hint: self.hint().into(),
            }),
        }
    }

    /// Scans the source with its rules.
    pub fn scan(self, hints: &SourceHints) -> Result<Corpus> {
        let root = self.locate(hints)?;
        let opts = self.scan_options();
        if root.extension().is_some_and(|e| e == "zip") {
            scan_zip(self.name(), &root, self.language(), &opts)
        } else {
            scan_dir(self.name(), &root, self.language(), &opts)
        }
    }
}

/// `first_glob` under the OOD folder, if there is one.
fn ood(hints: &SourceHints, dir: &str, keep: impl Fn(&str) -> bool, tail: &str) -> Option<PathBuf> {
    let base = hints.ood_dir.as_ref()?.join(dir);
    first_glob(base.to_str()?, keep, tail)
}

/// The trimmed stdout of a command as a path, if it ran and printed one.
fn command_line(program: &str, args: &[&str]) -> Option<PathBuf> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (out.status.success() && !line.is_empty()).then(|| PathBuf::from(line))
}

/// `dir/<first entry in sorted order whose name passes `keep`>/tail`, if it exists.
fn first_glob(dir: &str, keep: impl Fn(&str) -> bool, tail: &str) -> Option<PathBuf> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| keep(n))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| Path::new(dir).join(n).join(tail))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_missing_sources_say_how_to_get_them() {
        for s in NamedSource::ALL {
            assert_eq!(NamedSource::parse(s.name()), Some(s));
        }
        let hints = SourceHints {
            cargo_home: Some(PathBuf::from("/nonexistent-cargo-home")),
            ood_dir: None,
            hub: None,
        };
        let err = NamedSource::CargoRegistry
            .locate(&hints)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "source cargo-registry: /nonexistent-cargo-home/registry/src does not exist"
            ),
            "{err}"
        );
        assert!(err.contains("build ponder once with cargo"), "{err}");
    }

    #[test]
    fn the_crate_sources_that_built_ponder_are_a_rust_corpus() {
        // Every machine that built ponder has them (the build downloaded them).
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cargo")
            });
        let hints = SourceHints {
            cargo_home: Some(home),
            ood_dir: None,
            hub: None,
        };
        let corpus = NamedSource::CargoRegistry
            .scan(&hints)
            .unwrap()
            .non_empty()
            .unwrap();
        assert_eq!(corpus.language, Language::Rust);
        assert!(corpus
            .files
            .iter()
            .any(|f| f.rel_path.contains("candle-core-0.11.1/src/tensor.rs")));
    }
}
