//! Data for ponder, without Candle: tokenizers, and (in later layers) code corpora, packing and
//! chunking. Everything here yields plain `u32` token ids.
//!
//! - [`Tokenizer`]: a Hugging Face `tokenizer.json`, or GPT-2's BPE compiled in (offline);
//! - [`corpus`]: the files of one language under a folder or in a zip archive, with skip rules;
//! - [`sources`]: named sources of code already on a machine (`python-stdlib`, `cargo-registry`,
//!   `npm-global`, `go-src`, `jdk-src`);
//! - [`hf`]: code from Hugging Face dataset repositories (`.jsonl`, and `.parquet` with the
//!   default `parquet` feature, through the HF cache), and The Stack v2's file ids with contents
//!   from Software Heritage ([`hf::stack_v2`]);
//! - [`split`]: train / validation / test by a hash of the relative path;
//! - [`config`] and [`build`]: an experiment's `[data]` section and its tokenizer and token
//!   streams per split, cached;
//! - [`manifest`]: the files, sizes and SHA-256 a prepared dataset was built from;
//! - [`windows::score_windows`]: strided windows that score every token of a long stream once;
//! - [`text::read_text`]: reading a source file as text, refusing empty and binary files.

pub mod build;
pub mod config;
pub mod corpus;
pub mod dataset;
pub mod decontam;
pub mod error;
pub mod hf;
pub mod lang;
pub mod manifest;
pub mod pack;
pub mod shard;
pub mod sources;
pub mod split;
pub mod text;
pub mod tokenizer;
pub mod windows;

pub use build::ExperimentData;
pub use config::{DataConfig, TokenizerConfig};
pub use corpus::{scan_dir, scan_zip, Corpus, ScanOptions, SkipReason, SourceFile};
pub use error::{Error, Result};
pub use lang::Language;
pub use manifest::Manifest;
pub use ponder_hub::{Hub, HubOptions};
pub use sources::{NamedSource, SourceHints};
pub use split::{Split, SplitFractions};
pub use tokenizer::Tokenizer;
