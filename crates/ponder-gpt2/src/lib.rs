//! GPT-2 backbone on Candle.
//!
//! - [`Gpt2Config`]: Hugging Face's `GPT2Config` names, from a `config.json` or a named preset;
//! - [`Gpt2`]: the forward pass to the hidden states after `ln_f` and the tied logits, with an
//!   optional masked `<|pad|>` row, a training mode with seeded dropout, and gradients that reach
//!   every parameter, and a decoding forward over a [`KvCache`];
//! - loading from a local folder or file holding HF `model.safetensors`, or from a Hub id through
//!   the standard HF cache ([`load`]); GPT-2's random initialization ([`random`]); saving in the
//!   HF format ([`save`]).
//!
//! ```no_run
//! use ponder_gpt2::{load, LoadOptions, ModelSource};
//! let hub = ponder_hub::Hub::new(ponder_hub::HubOptions::from_env());
//! let source = ModelSource::parse("openai-community/gpt2");
//! let model = load(&source, &hub, &LoadOptions::cpu_f32())?;
//! # Ok::<(), candle::Error>(())
//! ```

pub mod config;
pub mod kv_cache;
pub mod load;
pub mod model;
pub mod weights;

pub use config::{Activation, Gpt2Config};
pub use kv_cache::KvCache;
pub use load::{load, random, save, LoadOptions, ModelSource};
pub use model::{Gpt2, PAD_LOGIT};
