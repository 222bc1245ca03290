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
    decider: Box<dyn ChunkDecider + 'a>,
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
    /// `decider`.
    pub fn new(
        lm: &'a PonderLm,
        chunk_len: usize,
        decider: Box<dyn ChunkDecider + 'a>,
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
            decider,
            state: lm.initial_state(1)?,
            cache: KvCache::new(),
            chunk_ids: Vec::new(),
            chunk_hidden: None,
            decided: false,
            decisions: Vec::new(),
            tokens: 0,
        })
    }

    /// The decision on the complete current chunk, and the update it asks for.
    fn decide(&mut self) -> Result<()> {
        let hidden = self
            .chunk_hidden
            .as_ref()
            .expect("a complete chunk has hidden states");
        let ids = Tensor::new(self.chunk_ids.as_slice(), hidden.device())?.unsqueeze(0)?;
        let decision = self.decider.decide(&Chunk {
            lm: self.lm,
            hidden,
            ids: &ids,
            tokens: &self.chunk_ids,
            state: &self.state,
            past: &self.decisions,
            prev_loss: None,
        })?;
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

/// A complete chunk of the stream, as a decider sees it.
pub struct Chunk<'c> {
    /// The model.
    pub lm: &'c PonderLm,
    /// The chunk's backbone hidden states, `(1, t, d)`.
    pub hidden: &'c Tensor,
    /// Its token ids, `(1, t)`.
    pub ids: &'c Tensor,
    /// The same ids.
    pub tokens: &'c [u32],
    /// The fast weights entering it.
    pub state: &'c FastState,
    /// The decisions on the chunks before it, in order.
    pub past: &'c [Decision],
    /// The mean next-token loss of the stream's previous chunk under the action taken there,
    /// where the caller measured it ([`Signals::prev_loss`]); decoding measures none.
    pub prev_loss: Option<f64>,
}

/// What decides, after each complete chunk, whether to update the fast weights on it.
pub trait ChunkDecider {
    /// The decision on `chunk`.
    fn decide(&mut self, chunk: &Chunk<'_>) -> Result<Decision>;
}

/// A training-free online gate, deciding from the chunk's reconstruction signal under the
/// carried fast weights, as stream mode's gates do, with the chunk's `prev_loss` (decoding
/// measures no chunk's loss, so there a gate on `neg_prev_loss` decides by its budget alone).
pub struct SignalDecider(pub Box<dyn Gate + Send>);

impl ChunkDecider for SignalDecider {
    fn decide(&mut self, c: &Chunk<'_>) -> Result<Decision> {
        let signal = c.lm.sequence_signals(c.hidden, c.ids, c.state)?[0];
        Ok(self.0.step(&Signals {
            position: c.past.len(),
            recon: signal.recon,
            recon_init: signal.recon_init,
            skip_loss: None,
            prev_loss: c.prev_loss,
            updates_so_far: c.past.iter().filter(|d| d.is_update()).count(),
        }))
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
