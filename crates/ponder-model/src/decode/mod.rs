//! Decoding: tokens one at a time from a model, greedy or sampled ([`Sampler`]), from the
//! backbone alone over a sliding window with or without its kv cache ([`BackboneStream`]), or
//! with the fast layer and a gate adapting over the prompt and the generated text
//! ([`FastStream`]). [`generate`] runs either until EOS, a caller's stop rule or a length.

mod backbone;
mod fast;
mod sampler;

use candle::{Result, Tensor};
use ponder_gate::Decision;

pub use backbone::BackboneStream;
pub use fast::{Chunk, ChunkDecider, FastStream, SignalDecider};
pub use sampler::{Sampler, Sampling};

/// A model being decoded: tokens in, the logits of the token that follows out.
pub trait DecodeStream {
    /// Appends `ids` (a prompt, or one generated token) and returns the logits of the next
    /// token.
    ///
    /// # Shapes
    /// - returns `(n_logits)`.
    fn feed(&mut self, ids: &[u32]) -> Result<Tensor>;

    /// What the stream did so far.
    fn report(&self) -> StreamReport;
}

/// What a [`DecodeStream`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamReport {
    /// Tokens fed (prompt and generated).
    pub tokens: usize,
    /// Times the backbone's window slid because the context was full.
    pub slides: usize,
    /// The gate's decision on each complete chunk, in order (fast-layer streams).
    pub decisions: Vec<Decision>,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced the end-of-text token (not kept).
    Eos,
    /// The caller's stop rule held.
    Rule,
    /// `max_new_tokens` were generated.
    Length,
}

/// The generated tokens and why generation stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The new tokens, without the prompt (and without EOS).
    pub ids: Vec<u32>,
    /// Why it stopped.
    pub stop: StopReason,
}

/// Generates up to `max_new_tokens` after `prompt`: each token picked by `sampler` from
/// `stream`'s logits and fed back, until `eos` is picked or `stop` (called with the new tokens
/// so far) holds.
pub fn generate(
    stream: &mut dyn DecodeStream,
    prompt: &[u32],
    sampler: &mut Sampler,
    max_new_tokens: usize,
    eos: Option<u32>,
    mut stop: impl FnMut(&[u32]) -> bool,
) -> Result<Generated> {
    if prompt.is_empty() {
        candle::bail!("decode: the prompt has no tokens");
    }
    let mut logits = stream.feed(prompt)?;
    let mut ids = Vec::new();
    while ids.len() < max_new_tokens {
        let next = sampler.pick(&logits)?;
        if Some(next) == eos {
            return Ok(Generated {
                ids,
                stop: StopReason::Eos,
            });
        }
        ids.push(next);
        if stop(&ids) {
            return Ok(Generated {
                ids,
                stop: StopReason::Rule,
            });
        }
        if ids.len() < max_new_tokens {
            logits = stream.feed(&[next])?;
        }
    }
    Ok(Generated {
        ids,
        stop: StopReason::Length,
    })
}
