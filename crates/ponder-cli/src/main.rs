//! `ponder`: the command-line tool of the ponder project.
//!
//! Thin by design: it parses arguments, picks a device, sets up logging, and calls the library
//! crates. See `ponder --help`.

#![allow(clippy::print_stdout)]

mod args;
mod compare;
mod data;
mod info;
mod report;
mod resolve;
mod score;
mod train;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// mimalloc reuses the large tensor buffers of a training step better than glibc's allocator,
/// whose system time (returning and faulting in pages) dominated CPU training.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    // Before any tensor work starts a thread pool.
    ponder_nn::threads::configure();
    // The command runs on a worker of the CPU pool, so that the many short parallel sections
    // of a forward pass start on its thread instead of waking a pool.
    let result = ponder_nn::threads::run_in_pool(|| match &cli.command {
        Command::Info(a) => info::run(&cli.global, a),
        Command::Score(a) => score::run(&cli.global, a),
        Command::Data(c) => data::run(&cli.global, c),
        Command::Train(c) => train::run(&cli.global, c),
        Command::Compare(a) => compare::run(&cli.global, a),
        Command::Report(a) => report::report(a),
        Command::Bench(a) => report::bench(&cli.global, a),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
