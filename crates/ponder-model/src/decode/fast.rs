//! Decoding with the fast layer and a gate in the loop, as stream mode runs them: the prompt
//! and the generated text form one stream cut into chunks of `chunk_len` tokens. The backbone
//! sees each chunk on its own, from position 0, as in training and evaluation (its kv cache is
//! emptied at every chunk boundary); every token is read through the fast layer under the
//! carried fast weights; when a chunk is complete the gate decides from that chunk's signal
//! whether to update the fast weights on it, and the resulting weights serve every token that
//! follows, the next token included.
//!
//! A token's read depends on a few earlier tokens of its chunk only (the TTT layer's causal
//! convolution, its RoPE positions within mini-batches), so each token is read from
//! [`crate::PonderLm::read_start`] on, not the whole chunk again (LoRA's causal attention reads
//! the whole chunk).

use candle::{Result, Tensor};
use ponder_gate::{Decision, Gate, Signals};
use ponder_gpt2::KvCache;

use super::{DecodeStream, StreamReport};
use crate::fast::FastState;
use crate::lm::PonderLm;

/// The fast layer and a gate over the stream of prompt and generated tokens.
pub struct FastStream<'a> {
    lm: &'a PonderLm,
    chunk_len: usize,
    gate: Box<dyn Gate + Send + 'a>,
    state: FastState,
    cache: KvCache,
    /// The current chunk's tokens and backbone hidden states `(1, len, d)`.
    chunk_ids: Vec<u32>,
    chunk_hidden: Option<Tensor>,
    /// Whether the current chunk is complete and decided on (it is dropped at the next token).
    decided: bool,
    decisions: Vec<Decision>,
    tokens: usize,
}

impl<'a> FastStream<'a> {
    /// A stream over `lm` from its initial fast weights, deciding every `chunk_len` tokens with
    /// `gate`.
    pub fn new(
        lm: &'a PonderLm,
        chunk_len: usize,
        gate: Box<dyn Gate + Send + 'a>,
    ) -> Result<Self> {
        let n_positions = lm.backbone_model().config().n_positions;
        if chunk_len == 0 || chunk_len > n_positions {
            candle::bail!(
                "decode: chunk_len {chunk_len} must lie in 1..={n_positions} (n_positions)"
            );
        }
        Ok(Self {
            lm,
            chunk_len,
            gate,
            state: lm.initial_state(1)?,
            cache: KvCache::new(),
            chunk_ids: Vec::new(),
            chunk_hidden: None,
            decided: false,
            decisions: Vec::new(),
            tokens: 0,
        })
    }

    /// The gate's decision on the complete current chunk, and the update it asks for.
    fn decide(&mut self) -> Result<()> {
        let hidden = self
            .chunk_hidden
            .as_ref()
            .expect("a complete chunk has hidden states");
        let ids = Tensor::new(self.chunk_ids.as_slice(), hidden.device())?.unsqueeze(0)?;
        let signal = self.lm.sequence_signals(hidden, &ids, &self.state)?[0];
        let signals = Signals {
            position: self.decisions.len(),
            recon: signal.recon,
            recon_init: signal.recon_init,
            skip_loss: None,
            updates_so_far: self.decisions.iter().filter(|d| d.is_update()).count(),
        };
        let decision = self.gate.step(&signals);
        if decision.is_update() {
            self.state = self
                .lm
                .update(hidden, &ids, &self.state, decision.steps() as usize)?
                .state;
        }
        self.decisions.push(decision);
        self.decided = true;
        Ok(())
    }

    /// The next token's logits: the last token read under the current fast weights.
    fn next_logits(&self) -> Result<Tensor> {
        let hidden = self.chunk_hidden.as_ref().expect("a token was fed");
        let len = self.chunk_ids.len();
        let start = self.lm.read_start(len - 1)?;
        let ids = Tensor::new(&self.chunk_ids[start..], hidden.device())?.unsqueeze(0)?;
        let features =
            self.lm
                .read_features(&hidden.narrow(1, start, len - start)?, &ids, &self.state)?;
        let last = features.narrow(1, len - start - 1, 1)?; // (1, 1, d)
        self.lm.logits(&last)?.flatten_all()
    }
}

impl DecodeStream for FastStream<'_> {
    fn feed(&mut self, ids: &[u32]) -> Result<Tensor> {
        if ids.is_empty() {
            candle::bail!("decode: nothing to feed");
        }
        let backbone = self.lm.backbone_model();
        let mut rest = ids;
        while !rest.is_empty() {
            if self.decided {
                self.chunk_ids.clear();
                self.chunk_hidden = None;
                self.cache.clear();
                self.decided = false;
            }
            let room = self.chunk_len - self.chunk_ids.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            let t = Tensor::new(now, backbone.device())?.unsqueeze(0)?; // (1, r)
            let h = backbone.forward_cached(&t, &mut self.cache)?.detach(); // (1, r, d)
            self.chunk_hidden = Some(match self.chunk_hidden.take() {
                Some(prev) => Tensor::cat(&[&prev, &h], 1)?,
                None => h,
            });
            self.chunk_ids.extend_from_slice(now);
            self.tokens += now.len();
            rest = later;
            if self.chunk_ids.len() == self.chunk_len {
                self.decide()?;
            }
        }
        self.next_logits()
    }

    fn report(&self) -> StreamReport {
        StreamReport {
            tokens: self.tokens,
            slides: 0,
            decisions: self.decisions.clone(),
        }
    }
}
