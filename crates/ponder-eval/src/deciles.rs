//! Where the signal's information lies: the mean advantage of the chunk-batches in each decile
//! of the reconstruction signal, read from an evaluation's `chunks.csv`.
//!
//! A controller that keeps the signal's level (the quantile gate, or the hindsight top-k) gains
//! over Random only when the advantage rises across many deciles; when only the top decile
//! stands out, every threshold near the median updates those chunks and the rest is noise.

use std::fmt::Write;

use crate::error::{Error, Result};
use crate::plots::ChunkTable;
use crate::report::EvalRun;

/// The mean advantage of each signal decile, highest signal first: `(mean signal, mean
/// advantage)` per decile; deciles split `n` chunk-batches as `⌊k·n/10⌋ .. ⌊(k+1)·n/10⌋` of the
/// chunk-batches sorted by decreasing signal (ties by stream order).
pub fn signal_deciles(signal: &[f64], advantage: &[f64]) -> Result<Vec<(f64, f64)>> {
    if signal.len() != advantage.len() || signal.len() < 10 {
        return Err(Error::Data(format!(
            "signal deciles need as many advantages as signals and at least 10 of each, got {} and {}",
            signal.len(),
            advantage.len()
        )));
    }
    let n = signal.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| signal[b].total_cmp(&signal[a]).then(a.cmp(&b)));
    Ok((0..10)
        .map(|k| {
            let idx = &order[k * n / 10..(k + 1) * n / 10];
            let mean = |col: &[f64]| idx.iter().map(|&i| col[i]).sum::<f64>() / idx.len() as f64;
            (mean(signal), mean(advantage))
        })
        .collect())
}

/// The rows of the deciles table for `runs` (name, evaluation), each from its `chunks.csv`.
pub(crate) fn deciles_section(s: &mut String, runs: &[(String, &EvalRun)]) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    s.push_str("Mean advantage (nats/token) of the chunk-batches in each decile of the signal, highest signal first; the signal's mean in each decile below it.\n\n| eval | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (name, run) in runs {
        let table = ChunkTable::read(&run.folder.chunks())?;
        let column = |c: &str| -> Result<Vec<f64>> {
            table
                .column(c)
                .ok_or_else(|| {
                    Error::Data(format!("{}: no column {c}", run.folder.chunks().display()))
                })?
                .iter()
                .map(|v| {
                    v.ok_or_else(|| {
                        Error::Data(format!(
                            "{}: an empty {c} cell",
                            run.folder.chunks().display()
                        ))
                    })
                })
                .collect()
        };
        let deciles = signal_deciles(&column("recon")?, &column("advantage")?)?;
        let _ = write!(s, "| {name} advantage |");
        for (_, a) in &deciles {
            let _ = write!(s, " {a:.3} |");
        }
        let _ = write!(s, "\n| {name} signal |");
        for (m, _) in &deciles {
            let _ = write!(s, " {m:.3} |");
        }
        s.push('\n');
    }
    s.push('\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_by_hand() {
        // 20 chunk-batches: signal i, advantage 2·i; the top decile holds signals 19 and 18.
        let signal: Vec<f64> = (0..20).map(f64::from).collect();
        let adv: Vec<f64> = signal.iter().map(|s| 2.0 * s).collect();
        let d = signal_deciles(&signal, &adv).unwrap();
        assert_eq!(d[0], (18.5, 37.0));
        assert_eq!(d[9], (0.5, 1.0));
        assert!(signal_deciles(&signal[..9], &adv[..9]).is_err());
        assert!(signal_deciles(&signal, &adv[..19]).is_err());
    }
}
