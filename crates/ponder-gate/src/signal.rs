//! [`Signal`]: which per-chunk quantity a threshold gate compares with its threshold.
//!
//! Both are training-free: the fast layer computes them from the chunk's own tokens before any
//! update is kept, so a deployed gate can read them.
//!
//! * `recon`: the mean reconstruction loss before each mini-batch's update
//!   (`mean(ttt_loss_step_0)`), the original's gating signal.
//! * `recon_init`: the mean reconstruction loss of the whole chunk under the chunk's initial
//!   fast weights (`mean(ttt_loss_init)`), the "full-sequence" signal of an earlier version of
//!   the original. It is the level of the chunk's difficulty for the fast layer without the
//!   within-chunk updates that lower `recon` on easy stretches.
//! * `neg_recon`, `neg_recon_init`: the same, negated, for fast layers whose signal runs against
//!   the gain of an update (a threshold on them updates the chunks with the *lowest* loss).

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
}

impl Signal {
    /// Every signal, in the order candidates are listed.
    pub const ALL: [Signal; 4] = [
        Signal::Recon,
        Signal::ReconInit,
        Signal::NegRecon,
        Signal::NegReconInit,
    ];

    /// The signal's value for a chunk a gate is deciding on.
    pub fn of(self, signals: &Signals) -> f64 {
        self.sign()
            * match self.base() {
                Signal::ReconInit => signals.recon_init,
                _ => signals.recon,
            }
    }

    /// The signal's value in a recorded chunk.
    pub fn of_record(self, record: &StreamRecord) -> f64 {
        self.sign()
            * match self.base() {
                Signal::ReconInit => record.recon_init,
                _ => record.recon,
            }
    }

    /// The measured quantity it is made from: `Recon` or `ReconInit`.
    pub fn base(self) -> Signal {
        match self {
            Signal::Recon | Signal::NegRecon => Signal::Recon,
            Signal::ReconInit | Signal::NegReconInit => Signal::ReconInit,
        }
    }

    /// +1, or −1 for the negated signals.
    pub fn sign(self) -> f64 {
        match self {
            Signal::NegRecon | Signal::NegReconInit => -1.0,
            _ => 1.0,
        }
    }

    /// The name in configs and reports (`recon`, `recon_init`, `neg_recon`, `neg_recon_init`).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Recon => "recon",
            Signal::ReconInit => "recon_init",
            Signal::NegRecon => "neg_recon",
            Signal::NegReconInit => "neg_recon_init",
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
            updates_so_far: 1,
        };
        assert_eq!(Signal::Recon.of(&s), 0.2);
        assert_eq!(Signal::ReconInit.of(&s), 0.7);
        assert_eq!(Signal::NegRecon.of(&s), -0.2);
        assert_eq!(Signal::NegReconInit.of(&s), -0.7);
        let r = StreamRecord {
            recon: 0.2,
            recon_init: 0.7,
            recon_after: 0.1,
            skip_loss: 3.0,
            update_loss: 2.9,
        };
        assert_eq!(Signal::ReconInit.of_record(&r), 0.7);
        assert_eq!(Signal::NegReconInit.of_record(&r), -0.7);
        let names: Vec<String> = Signal::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            ["recon", "recon_init", "neg_recon", "neg_recon_init"]
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
