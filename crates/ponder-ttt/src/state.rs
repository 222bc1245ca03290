//! `TttState`: the fast weights of a TTT layer, one linear model per sequence and head, passed
//! explicitly from chunk to chunk.
//!
//! A state is a pair of tensors; cloning it shares their storage (Candle tensors are reference
//! counted), so saving a state before a trial update and restoring it is free, and it never
//! copies the backbone.

use candle::{Result, Tensor};

/// Fast weights and biases for a batch of sequences.
#[derive(Debug, Clone)]
pub struct TttState {
    /// Fast weights `(bs, nh, hd, hd)`.
    pub w: Tensor,
    /// Fast biases `(bs, nh, 1, hd)`.
    pub c: Tensor,
}

impl TttState {
    /// Checks that the state fits `bs` sequences of `nh` heads of width `hd`.
    pub fn check(&self, bs: usize, nh: usize, hd: usize) -> Result<()> {
        if self.w.dims() != [bs, nh, hd, hd] || self.c.dims() != [bs, nh, 1, hd] {
            candle::bail!(
                "ttt: state has W {:?} and c {:?}, expected [{bs}, {nh}, {hd}, {hd}] and [{bs}, {nh}, 1, {hd}]",
                self.w.dims(),
                self.c.dims()
            );
        }
        Ok(())
    }

    /// The same state with gradients cut: for carrying state across chunks without
    /// back-propagating through earlier chunks.
    pub fn detach(&self) -> Self {
        Self {
            w: self.w.detach(),
            c: self.c.detach(),
        }
    }
}
