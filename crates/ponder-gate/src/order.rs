//! The order statistics every threshold gate shares: keeping the signals seen so far sorted, the
//! upper quantile of them that a fraction q of signals exceed, its saturating form, and the dead
//! zone of a budget count, and the history, count and decision rule of the quantile gates. The original's
//! calibration rule is the quantile here; the PID and quantile gates reuse it on their windows
//! and histories.

use crate::budget::Budget;
use crate::Decision;

/// What the quantile gates remember: every signal value seen, sorted, and how many decisions and
/// UPDATEs they observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    /// Every signal observed so far, sorted by [`f64::total_cmp`].
    pub history: Vec<f64>,
    /// Decisions observed so far.
    pub decided: usize,
    /// UPDATE decisions observed so far.
    pub updates: usize,
}

impl Tally {
    /// Records one decision, and its signal where it has a value.
    pub fn observe(&mut self, value: Option<f64>, update: bool) {
        if let Some(s) = value {
            insert_sorted(&mut self.history, s);
        }
        self.decided += 1;
        self.updates += usize::from(update);
    }

    /// The budget debt `ρ·t − U`: updates still owed by the decisions observed so far.
    pub fn debt(&self, budget: Budget) -> f64 {
        budget.rho() * self.decided as f64 - self.updates as f64
    }

    /// The threshold at the updated fraction `q`: the saturating `(1 − q)` quantile of the
    /// history; `None` while it holds fewer than `calibration` values.
    pub fn threshold(&self, calibration: usize, q: f64) -> Option<f64> {
        (self.history.len() >= calibration).then(|| saturating_quantile(&self.history, q))
    }

    /// The quantile gates' rule for a chunk whose signal is `value`: without a value, UPDATE iff
    /// the debt is positive; during calibration, UPDATE; after, UPDATE iff the value exceeds
    /// [`Tally::threshold`].
    pub fn decide(
        &self,
        value: Option<f64>,
        calibration: usize,
        q: f64,
        budget: Budget,
    ) -> Decision {
        let update = match (value, self.threshold(calibration, q)) {
            (None, _) => self.debt(budget) > 0.0,
            (Some(s), Some(tau)) => s > tau,
            (Some(_), None) => true,
        };
        if update {
            Decision::Update(1)
        } else {
            Decision::Skip
        }
    }
}

/// Inserts `s` into `sorted` (ascending by [`f64::total_cmp`]), after any equal values.
pub(crate) fn insert_sorted(sorted: &mut Vec<f64>, s: f64) {
    let i = sorted.partition_point(|x| x.total_cmp(&s).is_lt());
    sorted.insert(i, s);
}

/// `sorted[min(⌊(1 − q)·len⌋, len − 1)]`: the value a fraction of about q of `sorted`
/// (non-empty, ascending) exceeds; the original's calibration rule with q = ρ.
pub(crate) fn upper_quantile(sorted: &[f64], q: f64) -> f64 {
    let len = sorted.len();
    let idx = ((1.0 - q) * len as f64).floor() as usize;
    sorted[idx.min(len - 1)]
}

/// [`upper_quantile`], saturated: −∞ (every signal exceeds it) for q ≥ 1, +∞ (none does) for
/// q ≤ 0.
pub(crate) fn saturating_quantile(sorted: &[f64], q: f64) -> f64 {
    if q >= 1.0 {
        f64::NEG_INFINITY
    } else if q <= 0.0 {
        f64::INFINITY
    } else {
        upper_quantile(sorted, q)
    }
}

/// `sign(x)·max(0, |x| − band)`: `x` with the band around 0 taken out.
pub(crate) fn dead_zone(x: f64, band: f64) -> f64 {
    x.signum() * (x.abs() - band).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        let mut v = vec![];
        for s in [3.0, 1.0, 2.0, 2.0, 4.0] {
            insert_sorted(&mut v, s);
        }
        assert_eq!(v, [1.0, 2.0, 2.0, 3.0, 4.0]);
        // ⌊0.5·5⌋ = 2; ⌊0.8·5⌋ = 4; q = 0 would index 5, clamped to 4.
        assert_eq!(upper_quantile(&v, 0.5), 2.0);
        assert_eq!(upper_quantile(&v, 0.2), 4.0);
        assert_eq!(upper_quantile(&v, 0.0), 4.0);
        assert_eq!(saturating_quantile(&v, 0.0), f64::INFINITY);
        assert_eq!(saturating_quantile(&v, 1.0), f64::NEG_INFINITY);
        assert_eq!(saturating_quantile(&v, 0.6), 2.0);
        assert_eq!(dead_zone(5.0, 2.0), 3.0);
        assert_eq!(dead_zone(-5.0, 2.0), -3.0);
        assert_eq!(dead_zone(1.5, 2.0), 0.0);
    }
}
