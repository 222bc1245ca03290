//! Decoding with the backbone alone over a sliding window of its context: the tokens since the
//! window's start are the context; when they would exceed `n_positions`, the window restarts at
//! the last `n_positions / 2` tokens (as `ponder score` moves its windows by half a context),
//! and the slide is counted. With the kv cache each token costs one position's forward; without
//! it, the window is run whole for every token (the reference the cache is tested against).

use candle::{Result, Tensor};
use ponder_gpt2::{Gpt2, KvCache};

use super::{DecodeStream, StreamReport};

/// The backbone alone, with or without its kv cache.
pub struct BackboneStream<'a> {
    model: &'a Gpt2,
    cache: Option<KvCache>,
    history: Vec<u32>,
    /// Start of the window in `history`.
    start: usize,
    slides: usize,
}

impl<'a> BackboneStream<'a> {
    /// A stream over `model`; `cached` decodes with the kv cache.
    pub fn new(model: &'a Gpt2, cached: bool) -> Self {
        Self {
            model,
            cache: cached.then(KvCache::new),
            history: Vec::new(),
            start: 0,
            slides: 0,
        }
    }
}

impl DecodeStream for BackboneStream<'_> {
    fn feed(&mut self, ids: &[u32]) -> Result<Tensor> {
        if ids.is_empty() {
            candle::bail!("decode: nothing to feed");
        }
        let n_positions = self.model.config().n_positions;
        let before = self.history.len();
        self.history.extend_from_slice(ids);
        let slid = self.history.len() - self.start > n_positions;
        if slid {
            self.start = self.history.len() - (n_positions / 2).max(1);
            self.slides += 1;
        }
        let device = self.model.device();
        let hidden = match &mut self.cache {
            Some(cache) => {
                let new = if slid {
                    cache.clear();
                    &self.history[self.start..]
                } else {
                    &self.history[before..]
                };
                let t = Tensor::new(new, device)?.unsqueeze(0)?; // (1, t)
                self.model.forward_cached(&t, cache)?
            }
            None => {
                let t = Tensor::new(&self.history[self.start..], device)?.unsqueeze(0)?;
                self.model.forward(&t)?
            }
        }; // (1, t, d)
        let last = hidden.narrow(1, hidden.dim(1)? - 1, 1)?; // (1, 1, d)
        self.model.logits(&last)?.flatten_all()
    }

    fn report(&self) -> StreamReport {
        StreamReport {
            tokens: self.history.len(),
            slides: self.slides,
            decisions: Vec::new(),
        }
    }
}
