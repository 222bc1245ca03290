//! The keys and values of every block for the tokens seen so far, so that decoding computes
//! each new token's attention against them instead of running the whole sequence again
//! ([`crate::Gpt2::forward_cached`]).

use candle::{Result, Tensor};

/// Per block, the keys and values of the tokens seen so far, `(b, n_head, len, head_dim)` each.
#[derive(Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
    batch: Option<usize>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tokens cached (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every token: the next forward starts at position 0.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Checks that `b` sequences through `n_layer` blocks may extend this cache.
    pub(crate) fn check(&self, b: usize, n_layer: usize) -> Result<()> {
        if let Some(cached) = self.batch {
            if cached != b {
                candle::bail!("gpt2: the kv cache holds {cached} sequences, the input has {b}");
            }
        }
        if !self.layers.is_empty() && self.layers.len() != n_layer {
            candle::bail!(
                "gpt2: the kv cache has {} blocks, the model {n_layer}",
                self.layers.len()
            );
        }
        Ok(())
    }

    /// Block `i`'s entry, created empty on first use.
    pub(crate) fn layer(&mut self, i: usize) -> &mut Option<(Tensor, Tensor)> {
        if self.layers.len() <= i {
            self.layers.resize(i + 1, None);
        }
        &mut self.layers[i]
    }

    /// Counts `t` more tokens, once every block has appended its keys and values.
    pub(crate) fn advance(&mut self, t: usize) {
        self.len += t;
        if self.batch.is_none() {
            self.batch = self
                .layers
                .iter()
                .flatten()
                .next()
                .map(|(k, _)| k.dims()[0]);
        }
    }
}
