//! `ponder`: the command-line tool of the ponder project.
//!
//! Thin by design: it parses arguments, picks a device, sets up logging, and calls the library
//! crates. See `ponder --help`.

#![allow(clippy::print_stdout)]

mod args;
mod codegen;
mod compare;
mod data;
mod generate;
mod info;
mod report;
mod resolve;
mod score;
mod solutions_loss;
mod sweep;
mod train;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// mimalloc reuses the large tensor buffers of a training step better than glibc's allocator,
/// whose system time (returning and faulting in pages) dominated CPU training.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the `mi_option_e` of mimalloc 3.3 (libmimalloc-sys, pinned): the
/// bindings name no constant for it.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// Its documented default, in milliseconds.
const PURGE_DELAY_DEFAULT_MS: std::ffi::c_long = 1000;

/// mimalloc hands freed pages back to the OS after `purge_delay` (1,000 ms by default). A
/// training step frees and reallocates tens of megabytes of tensors, so the kernel faulted those
/// pages in and zeroed them again at every step: a fifth of a tiny backbone step's samples in
/// `perf`, and 10–18% of its time (docs/performance.md). A `ponder` command is one process
/// doing one job, so it keeps freed memory for reuse instead; `MIMALLOC_PURGE_DELAY` still
/// decides where it is set. Call first in `main`, before other threads exist.
#[allow(unsafe_code)] // two calls into mimalloc's option API, which takes and returns integers
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: no pointers cross; the option calls are not thread-safe, and no other thread
    // exists yet. Only the documented default is replaced, so that a different option at this
    // index (another mimalloc) is left alone.
    unsafe {
        if libmimalloc_sys::mi_option_get(PURGE_DELAY) == PURGE_DELAY_DEFAULT_MS {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
        }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
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
        Command::Codegen(a) => codegen::run(&cli.global, a),
        Command::Generate(a) => generate::run(&cli.global, a),
        Command::Sweep(c) => sweep::run(c),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails if a mimalloc upgrade moves the option: then the index no longer holds a
    /// 1,000 ms default and `keep_freed_memory` would leave purging on.
    #[test]
    #[allow(unsafe_code)] // reads of mimalloc's options
    fn the_purge_delay_option_is_found_and_turned_off() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: integer-only calls, as in `keep_freed_memory`; other tests may run meanwhile,
        // and the write is of one integer that mimalloc reads at its next purge decision.
        let get = || unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(get(), PURGE_DELAY_DEFAULT_MS);
        keep_freed_memory();
        assert_eq!(get(), -1);
    }
}
