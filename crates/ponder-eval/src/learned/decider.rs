//! The learned gate as a [`ChunkDecider`]: after each complete chunk of a stream (a generation's
//! prompt and text, or a scored problem), it reads the chunk's feature vector (the model's
//! statistics of the chunk, the signal under the carried fast weights, the stream's history)
//! and picks SKIP or UPDATE_k, its budget correction carried over every stream it serves.

use std::cell::RefCell;

use candle::Result;
use ponder_gate::features::History;
use ponder_gate::Decision;
use ponder_model::decode::{Chunk, ChunkDecider};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{chunk_features, ChunkProbe, FeatureShape, LearnedGate, Position};

/// One stream's view of a shared learned gate: its own history and draws.
pub struct LearnedDecider<'g> {
    gate: &'g RefCell<LearnedGate>,
    history: History,
    draws: ChaCha8Rng,
    vocab: usize,
}

impl<'g> LearnedDecider<'g> {
    /// A fresh stream of `gate` over a model of `vocab` tokens; its draws (where the gate
    /// samples) from `seed`.
    pub fn new(gate: &'g RefCell<LearnedGate>, vocab: usize, seed: u64) -> crate::Result<Self> {
        let history = {
            let g = gate.borrow();
            History::new(g.meta.history_alpha, g.meta.budget)?
        };
        Ok(Self {
            gate,
            history,
            draws: ChaCha8Rng::seed_from_u64(seed),
            vocab,
        })
    }
}

impl ChunkDecider for LearnedDecider<'_> {
    fn decide(&mut self, c: &Chunk<'_>) -> Result<Decision> {
        let err = |e: crate::Error| candle::Error::Msg(format!("learned gate: {e}"));
        let mut gate = self.gate.borrow_mut();
        let probe = ChunkProbe::new(c.lm, c.ids).map_err(err)?;
        let at = Position {
            hidden: c.hidden,
            ids: c.ids,
            ids_rows: vec![c.tokens],
            probe: &probe,
        };
        let shape = FeatureShape {
            chunk_len: gate.meta.chunk_len,
            vocab: self.vocab,
            length_norm: gate.meta.length_norm,
        };
        let (obs, _) = chunk_features(
            c.lm,
            &at,
            &[c.state],
            std::slice::from_ref(&self.history),
            shape,
        )
        .map_err(err)?;
        let decision = gate.decide(&obs, &mut self.draws).map_err(err)?[0];
        self.history.observe(probe.none_loss[0], decision.cost());
        Ok(decision)
    }
}
