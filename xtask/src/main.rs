//! The `cargo xtask` entry point: parses the subcommand by hand and dispatches to the library.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use anyhow::{bail, Result};

/// The subcommands, with a one-line description each, for the usage message.
const COMMANDS: &[(&str, &str)] = &[
    (
        "tidy",
        "check the crate map and that every .rs file starts with a `//!` doc comment",
    ),
    (
        "reproduce",
        "run the paper's experiment: [--tiny|--small|--medium|--large|--xl] [--phases LIST] [--resume] [--emit slurm]",
    ),
    (
        "sweep",
        "run a sweep file's points and aggregate them: --config FILE [--jobs N] [--device D] [--emit slurm [--submit]]",
    ),
    (
        "gpu-check",
        "build the CUDA binaries and pack them with the script that checks them on a GPU machine: [--dry-run]",
    ),
    (
        "data",
        "list the optional data (corpora in data/ood, benchmarks in data/bench); `data --yes [NAME ...]` installs it",
    ),
];

/// The usage message, listing every subcommand.
fn usage() -> String {
    let lines: Vec<String> = COMMANDS
        .iter()
        .map(|(name, help)| format!("  {name:<10} {help}"))
        .collect();
    format!(
        "usage: cargo xtask <command>\n\ncommands:\n{}",
        lines.join("\n")
    )
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the command line and runs the subcommand it names.
fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["tidy"] => {
            xtask::tidy::run_tidy(&xtask::tidy::workspace_root())?;
            println!("tidy: ok");
            Ok(())
        }
        ["data"] => xtask::data::run(&xtask::tidy::workspace_root(), false, &[]),
        ["data", "--yes", only @ ..] => {
            xtask::data::run(&xtask::tidy::workspace_root(), true, only)
        }
        ["data", rest @ ..] => bail!("data takes only --yes [NAME ...], got `{}`", rest.join(" ")),
        ["reproduce", rest @ ..] => {
            let plan = xtask::reproduce::parse(rest)?;
            xtask::reproduce::run(&xtask::tidy::workspace_root(), &plan)
        }
        ["gpu-check"] => xtask::gpu_check::run(&xtask::tidy::workspace_root(), false),
        ["gpu-check", "--dry-run"] => xtask::gpu_check::run(&xtask::tidy::workspace_root(), true),
        ["gpu-check", rest @ ..] => {
            bail!("gpu-check takes only --dry-run, got `{}`", rest.join(" "))
        }
        ["sweep", rest @ ..] => {
            let args = xtask::sweep::parse(rest)?;
            xtask::sweep::run(&xtask::tidy::workspace_root(), &args)
        }
        ["help" | "--help" | "-h"] => {
            println!("{}", usage());
            Ok(())
        }
        ["tidy", rest @ ..] => bail!("tidy takes no arguments, got `{}`", rest.join(" ")),
        [] => bail!("no command given\n\n{}", usage()),
        [command, ..] => bail!("unknown command `{command}`\n\n{}", usage()),
    }
}
