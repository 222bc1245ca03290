//! `TttState`: the fast weights of a TTT layer, one fast model per sequence and head, passed
//! explicitly from chunk to chunk.
//!
//! A state is a pair of tensors; cloning it shares their storage (Candle tensors are reference
//! counted), so saving a state before a trial update and restoring it is free, and it never
//! copies the backbone.

use candle::{Result, Tensor};

/// Fast weights and biases for a batch of sequences: one entry per fast-model layer (one for
/// TTT-Linear, two for TTT-MLP).
#[derive(Debug, Clone)]
pub struct TttState {
    /// Weights `(bs, nh, in, out)` per layer.
    pub w: Vec<Tensor>,
    /// Biases `(bs, nh, 1, out)` per layer.
    pub b: Vec<Tensor>,
}

impl TttState {
    /// Checks that the state fits `bs` sequences of `nh` heads with these layer shapes.
    pub fn check(&self, bs: usize, nh: usize, layers: &[(usize, usize)]) -> Result<()> {
        let ok = self.w.len() == layers.len()
            && self.b.len() == layers.len()
            && layers.iter().enumerate().all(|(l, &(i, o))| {
                self.w[l].dims() == [bs, nh, i, o] && self.b[l].dims() == [bs, nh, 1, o]
            });
        if !ok {
            let got: Vec<_> = self.w.iter().map(|t| t.dims().to_vec()).collect();
            let want: Vec<_> = layers.iter().map(|&(i, o)| [bs, nh, i, o]).collect();
            candle::bail!("ttt: state has weights {got:?}, expected {want:?}");
        }
        Ok(())
    }

    /// The same state with gradients cut: for carrying state across chunks without
    /// back-propagating through earlier chunks.
    pub fn detach(&self) -> Self {
        Self {
            w: self.w.iter().map(Tensor::detach).collect(),
            b: self.b.iter().map(Tensor::detach).collect(),
        }
    }

    /// The fast weights of sequence `i` alone, a state for one sequence.
    pub fn row(&self, i: usize) -> Result<Self> {
        let pick = |t: &Tensor| t.narrow(0, i, 1);
        Ok(Self {
            w: self.w.iter().map(pick).collect::<Result<_>>()?,
            b: self.b.iter().map(pick).collect::<Result<_>>()?,
        })
    }

    /// States of the same layer stacked along the sequence axis, in order: the state of a batch
    /// gathered from the states of its streams.
    pub fn cat(states: &[&Self]) -> Result<Self> {
        let Some(first) = states.first() else {
            candle::bail!("ttt: no states to stack");
        };
        let stack = |l: usize, w: bool| -> Result<Tensor> {
            let parts: Vec<&Tensor> = states
                .iter()
                .map(|s| if w { &s.w[l] } else { &s.b[l] })
                .collect();
            Tensor::cat(&parts, 0)
        };
        if states.iter().any(|s| s.w.len() != first.w.len()) {
            candle::bail!("ttt: states of different fast models cannot be stacked");
        }
        Ok(Self {
            w: (0..first.w.len())
                .map(|l| stack(l, true))
                .collect::<Result<_>>()?,
            b: (0..first.b.len())
                .map(|l| stack(l, false))
                .collect::<Result<_>>()?,
        })
    }
}
