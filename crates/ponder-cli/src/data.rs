//! `ponder data`: the code corpora found on this machine.

use std::path::PathBuf;

use anyhow::Result;
use ponder_data::{NamedSource, SourceHints};

use crate::args::{DataCommand, Global};

/// The source hints from the environment: `$CARGO_HOME`, else `~/.cargo`; and `data/ood` (where
/// `cargo xtask data` installs the optional corpora), or `$PONDER_OOD_DIR`; and the Hub client
/// (offline with `--offline` or `HF_HUB_OFFLINE`).
pub fn hints(global: &Global) -> SourceHints {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let ood_dir = std::env::var_os("PONDER_OOD_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("data/ood")));
    let hub = Some(crate::resolve::hub(global));
    SourceHints {
        cargo_home,
        ood_dir,
        hub,
    }
}

/// Runs a `ponder data` subcommand.
pub fn run(global: &Global, cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Sources => sources(global),
    }
}

fn sources(global: &Global) -> Result<()> {
    let hints = hints(global);
    println!(
        "{:<16} {:<11} {:>8} {:>10}  where / skipped",
        "source", "language", "files", "MB"
    );
    for source in NamedSource::ALL {
        match source.scan(&hints) {
            Ok(c) => {
                let skipped: Vec<String> = c
                    .skipped
                    .iter()
                    .map(|(r, n)| format!("{r:?} {n}"))
                    .collect();
                println!(
                    "{:<16} {:<11} {:>8} {:>10.1}  {}",
                    source.name(),
                    source.language().name(),
                    c.files.len(),
                    c.total_bytes() as f64 / 1e6,
                    c.root.display()
                );
                if !skipped.is_empty() {
                    println!(
                        "{:<16} {:<11} {:>8} {:>10}  skipped: {}",
                        "",
                        "",
                        "",
                        "",
                        skipped.join(", ")
                    );
                }
            }
            Err(e) => println!(
                "{:<16} {:<11} {:>8} {:>10}  missing: {e}",
                source.name(),
                source.language().name(),
                "-",
                "-"
            ),
        }
    }
    Ok(())
}
