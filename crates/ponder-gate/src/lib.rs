//! Gating policies for adaptive test-time training: per-chunk signals in, SKIP or UPDATE_k out.
//!
//! This crate knows nothing about models or tokens. A caller streams chunks, computes a
//! [`Signals`] value for each (the reconstruction loss of the fast layer's inner loop, optionally
//! the SKIP loss, the position in the stream, the budget used so far) and asks a [`Gate`] for a
//! [`Decision`]. After acting on it, the caller reports back with [`Gate::observe`], which is where
//! stateful controllers (the reconstruction threshold, its PID variant) adapt.
//!
//! Policies that need the whole stream before deciding (the oracles, TTT-improvement top-k) are
//! not [`Gate`]s: they are functions over a slice of [`StreamRecord`]s in [`offline`].
//! [`GateConfig`] names every policy for TOML configs, and [`decide_stream`] replays
//! any of them over recorded signals.
//!
//! The online gates are [`Fixed`] (SKIP or UPDATE_k), [`RandomGate`], [`ReconGate`] (the
//! original's controller, "Ours"), [`PidReconGate`] (the same signal with a PID-held update
//! rate over a sliding window), [`QuantileGate`] (a long-horizon threshold: a quantile of
//! every signal seen so far, with a budget debt) and [`PacedGate`] (the same threshold, paced to
//! spend the budget by the end of a stream of known length).
//! Definitions follow the original implementation (see `docs/design/gating.md`).
//!
//! ```
//! use ponder_gate::{Budget, Gate, GateConfig, Signals};
//!
//! let mut gate = GateConfig::original_recon()
//!     .online_gate(Budget::new(0.5).unwrap(), None)
//!     .unwrap()
//!     .expect("an online gate");
//! let mut updates = 0;
//! for (position, recon) in [0.91, 0.42, 0.77].into_iter().enumerate() {
//!     let signals = Signals {
//!         position,
//!         recon,
//!         recon_init: recon,
//!         skip_loss: None,
//!         prev_loss: None,
//!         updates_so_far: updates,
//!     };
//!     let decision = gate.step(&signals); // SKIP or UPDATE_1
//!     updates += usize::from(decision.is_update());
//! }
//! // The first 16 chunks calibrate the threshold, and are updated.
//! assert_eq!(updates, 3);
//! ```

pub mod budget;
pub mod config;
pub mod error;
pub mod features;
pub mod fixed;
pub mod grid;
pub mod method;
pub mod offline;
mod order;
pub mod paced;
pub mod pid;
pub mod quantile;
pub mod random;
pub mod recon;
pub mod signal;
pub mod stream;

pub use budget::Budget;
pub use config::{GateConfig, OracleScope};
pub use error::{Error, Result};
pub use fixed::Fixed;
pub use grid::ControllerGrid;
pub use method::{Method, BACKBONE, GREEDY_ORACLE, LEARNED, SELECTED};
pub use paced::{PacedGate, PacedParams};
pub use pid::{PidParams, PidReconGate};
pub use quantile::{QuantileGate, QuantileParams};
pub use random::RandomGate;
pub use recon::ReconGate;
pub use signal::Signal;
pub use stream::{decide_stream, Trace};

/// What a gate may know about one chunk when it decides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signals {
    /// Position of the chunk in the decision stream, from 0.
    pub position: usize,
    /// The training-free signal: mean reconstruction loss of the fast layer's inner loop on
    /// this chunk before each mini-batch's update (the original's `mean(ttt_loss_step_0)`).
    pub recon: f64,
    /// The mean reconstruction loss of the whole chunk under its initial fast weights (the
    /// original's `mean(ttt_loss_init)`), the other training-free [`Signal`].
    pub recon_init: f64,
    /// The SKIP path's next-token loss, for methods allowed to use it; `None` otherwise.
    pub skip_loss: Option<f64>,
    /// The next-token loss, under the action taken, of the chunk run just before this one, in
    /// the caller's order: in reset mode the previous chunk-batch of the decision stream, in
    /// stream mode the same stream's previous chunk. Its tokens are past text when this chunk
    /// is decided. `None` where no chunk was run before (a stream's first chunk).
    pub prev_loss: Option<f64>,
    /// UPDATE decisions made so far in this stream (before this chunk).
    pub updates_so_far: usize,
}

/// A gate's decision for one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Decision {
    /// Backbone only; the fast weights are not updated.
    Skip,
    /// Update the fast weights with this many steps, k ∈ [`UPDATE_STEPS`].
    Update(u32),
}

/// The inner steps an UPDATE may take: the actions UPDATE_1, UPDATE_2 and UPDATE_4.
pub const UPDATE_STEPS: [u32; 3] = [1, 2, 4];

/// Every action of stream mode, in the learned gate's order (its logits): SKIP (a read of the
/// carried state), UPDATE_1, UPDATE_2, UPDATE_4.
pub const ACTIONS: [Decision; 4] = [
    Decision::Skip,
    Decision::Update(1),
    Decision::Update(2),
    Decision::Update(4),
];

/// Checks that `k` is one of [`UPDATE_STEPS`]; `key` names the setting in the error.
pub fn check_update_steps(key: &str, k: u64) -> Result<()> {
    if UPDATE_STEPS.iter().any(|&s| u64::from(s) == k) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{key} = {k}, expected 1, 2 or 4 (the actions UPDATE_1, UPDATE_2 and UPDATE_4)"
        )))
    }
}

impl Decision {
    /// The number of update steps: 0 for SKIP, k for UPDATE_k.
    pub fn steps(self) -> u32 {
        match self {
            Decision::Skip => 0,
            Decision::Update(k) => k,
        }
    }

    /// Whether this is an update.
    pub fn is_update(self) -> bool {
        self.steps() > 0
    }

    /// Cost in the original's units ([`ponder_metrics::cost_units`]): SKIP = 1, UPDATE_k = 1 + 2k.
    pub fn cost(self) -> f64 {
        ponder_metrics::cost_units(self.steps())
    }
}

/// An online gating policy: decides chunk by chunk, seeing only the past.
pub trait Gate {
    /// The decision for the chunk described by `signals`.
    fn decide(&mut self, signals: &Signals) -> Decision;

    /// Called once after every [`Gate::decide`], with the same signals and the decision taken.
    fn observe(&mut self, _signals: &Signals, _decision: Decision) {}

    /// [`Gate::decide`], then [`Gate::observe`] with the decision taken: one chunk of a stream
    /// whose caller acts on every decision as given.
    fn step(&mut self, signals: &Signals) -> Decision {
        let decision = self.decide(signals);
        self.observe(signals, decision);
        decision
    }

    /// The current threshold on the signal, for controllers that keep one (for traces and
    /// plots); `None` for policies without a threshold or before calibration ends.
    fn threshold(&self) -> Option<f64> {
        None
    }
}

/// One chunk of a recorded stream: everything any policy, online or offline, may use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamRecord {
    /// The training-free signal (see [`Signals::recon`]).
    pub recon: f64,
    /// See [`Signals::recon_init`].
    pub recon_init: f64,
    /// Mean reconstruction loss after each mini-batch's update (the original's
    /// `mean(ttt_loss_step_1)`); known only after running the update.
    pub recon_after: f64,
    /// Next-token loss of the SKIP path.
    pub skip_loss: f64,
    /// Next-token loss of the UPDATE path.
    pub update_loss: f64,
}

impl StreamRecord {
    /// How much the update helps this chunk: `skip_loss − update_loss`.
    pub fn advantage(&self) -> f64 {
        self.skip_loss - self.update_loss
    }

    /// How much the update lowers the reconstruction loss: `recon − recon_after`.
    pub fn ttt_improvement(&self) -> f64 {
        self.recon - self.recon_after
    }
}
