//! Data for ponder, without Candle: tokenizers, and (in later layers) code corpora, packing and
//! chunking. Everything here yields plain `u32` token ids.
//!
//! - [`Tokenizer`]: a Hugging Face `tokenizer.json`, or GPT-2's BPE compiled in (offline);
//! - [`windows::score_windows`]: strided windows that score every token of a long stream once;
//! - [`text::read_text`]: reading a source file as text, refusing empty and binary files.

pub mod error;
pub mod text;
pub mod tokenizer;
pub mod windows;

pub use error::{Error, Result};
pub use tokenizer::Tokenizer;
