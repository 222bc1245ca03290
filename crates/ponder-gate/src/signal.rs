//! [`Signal`]: which per-chunk quantity a threshold gate compares with its threshold.
//!
//! Each is known before the chunk's decision, so a deployed gate can read it. The
//! reconstruction signals are training-free: the fast layer computes them from the chunk's own
//! tokens before any update is kept.
//!
//! * `recon`: the mean reconstruction loss before each mini-batch's update
//!   (`mean(ttt_loss_step_0)`), the original's gating signal.
//! * `recon_init`: the mean reconstruction loss of the whole chunk under the chunk's initial
//!   fast weights (`mean(ttt_loss_init)`), the "full-sequence" signal of an earlier version of
//!   the original. It is the level of the chunk's difficulty for the fast layer without the
//!   within-chunk updates that lower `recon` on easy stretches.
//! * `neg_recon`, `neg_recon_init`: the same, negated, for fast layers whose signal runs against
//!   the gain of an update (a threshold on them updates the chunks with the *lowest* loss).
//! * `neg_prev_loss`: minus the next-token loss, under the action taken, of the chunk run just
//!   before this one ([`Signals::prev_loss`]): text that the model has just predicted well is
//!   text an update helps most (on the embedded default's validation split its Spearman
//!   correlation with the next chunk-batch's advantage is 0.48, against 0.18 for `recon`).
//!   It reads the previous chunk's tokens, which are past text by the time the chunk is
//!   decided, never the chunk's own. Where no chunk was run before (a stream's first), it has
//!   no value; a gate then decides without it.

use std::fmt;

use crate::{Signals, StreamRecord};

/// A training-free per-chunk signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// `mean(ttt_loss_step_0)` ([`Signals::recon`]).
    Recon,
    /// `mean(ttt_loss_init)` ([`Signals::recon_init`]).
    ReconInit,
    /// `−recon`.
    NegRecon,
    /// `−recon_init`.
    NegReconInit,
    /// `−prev_loss` ([`Signals::prev_loss`]).
    NegPrevLoss,
}

impl Signal {
    /// Every signal, in the order candidates are listed.
    pub const ALL: [Signal; 5] = [
        Signal::Recon,
        Signal::ReconInit,
        Signal::NegRecon,
        Signal::NegReconInit,
        Signal::NegPrevLoss,
    ];

    /// The signal's value for a chunk a gate is deciding on; `None` for `neg_prev_loss` where
    /// no chunk was run before.
    pub fn of(self, signals: &Signals) -> Option<f64> {
        let value = match self.base() {
            Signal::ReconInit => Some(signals.recon_init),
            Signal::NegPrevLoss => signals.prev_loss,
            _ => Some(signals.recon),
        };
        value.map(|v| self.sign() * v)
    }

    /// The signal's value in each chunk of a recorded stream, with hindsight: `neg_prev_loss`
    /// reads the previous record's SKIP loss (an online gate reads the loss of the action it
    /// took there) and has no value at the first record.
    pub fn of_records(self, records: &[StreamRecord]) -> Vec<Option<f64>> {
        records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let value = match self.base() {
                    Signal::ReconInit => Some(r.recon_init),
                    Signal::NegPrevLoss => i.checked_sub(1).map(|p| records[p].skip_loss),
                    _ => Some(r.recon),
                };
                value.map(|v| self.sign() * v)
            })
            .collect()
    }

    /// The measured quantity it is made from: `Recon`, `ReconInit` or `NegPrevLoss` (the
    /// previous chunk's loss, negated).
    pub fn base(self) -> Signal {
        match self {
            Signal::Recon | Signal::NegRecon => Signal::Recon,
            Signal::ReconInit | Signal::NegReconInit => Signal::ReconInit,
            Signal::NegPrevLoss => Signal::NegPrevLoss,
        }
    }

    /// +1, or −1 for the negated signals.
    pub fn sign(self) -> f64 {
        match self {
            Signal::NegRecon | Signal::NegReconInit | Signal::NegPrevLoss => -1.0,
            _ => 1.0,
        }
    }

    /// The name in configs and reports (`recon`, `recon_init`, `neg_recon`, `neg_recon_init`,
    /// `neg_prev_loss`).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Recon => "recon",
            Signal::ReconInit => "recon_init",
            Signal::NegRecon => "neg_recon",
            Signal::NegReconInit => "neg_recon_init",
            Signal::NegPrevLoss => "neg_prev_loss",
        }
    }

    /// The signal named `name`, if any.
    pub fn parse(name: &str) -> Option<Signal> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_field() {
        let s = Signals {
            position: 3,
            recon: 0.2,
            recon_init: 0.7,
            skip_loss: None,
            prev_loss: Some(4.5),
            updates_so_far: 1,
        };
        assert_eq!(Signal::Recon.of(&s), Some(0.2));
        assert_eq!(Signal::ReconInit.of(&s), Some(0.7));
        assert_eq!(Signal::NegRecon.of(&s), Some(-0.2));
        assert_eq!(Signal::NegReconInit.of(&s), Some(-0.7));
        assert_eq!(Signal::NegPrevLoss.of(&s), Some(-4.5));
        let first = Signals {
            prev_loss: None,
            ..s
        };
        assert_eq!(Signal::NegPrevLoss.of(&first), None);
        assert_eq!(Signal::Recon.of(&first), Some(0.2));
        let r = StreamRecord {
            recon: 0.2,
            recon_init: 0.7,
            recon_after: 0.1,
            skip_loss: 3.0,
            update_loss: 2.9,
        };
        let second = StreamRecord {
            skip_loss: 5.0,
            ..r
        };
        let both = [r, second];
        assert_eq!(Signal::ReconInit.of_records(&both), [Some(0.7), Some(0.7)]);
        assert_eq!(
            Signal::NegReconInit.of_records(&both),
            [Some(-0.7), Some(-0.7)]
        );
        assert_eq!(Signal::NegPrevLoss.of_records(&both), [None, Some(-3.0)]);
        let names: Vec<String> = Signal::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "recon",
                "recon_init",
                "neg_recon",
                "neg_recon_init",
                "neg_prev_loss"
            ]
        );
        for s in Signal::ALL {
            assert_eq!(Signal::parse(s.name()), Some(s));
        }
        assert_eq!(Signal::parse("skip_loss"), None);
        #[derive(serde::Deserialize)]
        struct Row {
            signal: Signal,
        }
        let row: Row = toml::from_str(r#"signal = "recon_init""#).unwrap();
        assert_eq!(row.signal, Signal::ReconInit);
        assert!(toml::from_str::<Row>(r#"signal = "skip_loss""#).is_err());
    }
}
