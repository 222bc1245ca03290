//! Episodes of the learned gate over cached streams ([`run_episodes`]): at each chunk position
//! the rows still alive are stacked, their features computed under their carried states, the
//! actions chosen by the caller (sampled in training, the corrected argmax in calibration), and
//! each row's action run on its own state, which carries to its next chunk. One function for
//! both, so that training and calibration see the same environment.

use candle::Tensor;
use ponder_eval::act::act_rows;
use ponder_eval::learned::{chunk_features, ChunkProbe, FeatureShape, Position};
use ponder_gate::features::History;
use ponder_gate::{Decision, ACTIONS};
use ponder_model::{FastState, PonderLm};

use super::cache::StreamCache;
use crate::error::{eval_err, Result};

/// One decision of an episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The stream's position in the list run.
    pub slot: usize,
    /// The chunk within its stream, from 0.
    pub chunk: usize,
    /// Whether it is its stream's last chunk.
    pub last: bool,
    /// The action's index in [`ACTIONS`].
    pub action: usize,
    /// The chunk's loss after the action, nats/token.
    pub loss: f64,
    /// The backbone alone's loss on the chunk.
    pub none_loss: f64,
}

impl Step {
    /// The action's cost in the original's units.
    pub fn cost(&self) -> f64 {
        ACTIONS[self.action].cost()
    }
}

/// Every decision of a set of episodes, in the order made (chunk position by position), and
/// their feature vectors, `WIDTH` values each in the same order.
pub struct Episodes {
    /// The decisions.
    pub steps: Vec<Step>,
    /// The feature vectors.
    pub obs: Vec<f32>,
}

/// Runs the streams `picked` (indices into `cache`) side by side from the learned initial
/// state; `choose(obs)` gives the action index of each row of a chunk position's features.
pub fn run_episodes(
    lm: &PonderLm,
    cache: &StreamCache,
    picked: &[usize],
    shape: FeatureShape,
    history: (f64, f64),
    choose: &mut dyn FnMut(&[f32]) -> Result<Vec<usize>>,
) -> Result<Episodes> {
    let streams: Vec<_> = picked.iter().map(|&i| &cache.streams[i]).collect();
    let mut states = (0..streams.len())
        .map(|_| lm.initial_state(1))
        .collect::<candle::Result<Vec<_>>>()?;
    let mut histories = (0..streams.len())
        .map(|_| History::new(history.0, history.1))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| crate::error::Error::Config(e.to_string()))?;
    let longest = streams.iter().map(|s| s.len()).max().unwrap_or(0);
    let (mut steps, mut obs_all) = (Vec::new(), Vec::new());
    for c in 0..longest {
        let rows: Vec<usize> = (0..streams.len())
            .filter(|&s| streams[s].len() > c)
            .collect();
        let chunks: Vec<_> = rows.iter().map(|&s| &streams[s][c]).collect();
        let hidden = Tensor::stack(&chunks.iter().map(|k| &k.hidden).collect::<Vec<_>>(), 0)?;
        let ids: Vec<u32> = chunks.iter().flat_map(|k| k.ids.iter().copied()).collect();
        let ids = Tensor::from_vec(ids, (rows.len(), shape.chunk_len), hidden.device())?;
        let probe = ChunkProbe {
            stats: chunks.iter().map(|k| k.stats).collect(),
            none_loss: chunks.iter().map(|k| k.none_loss).collect(),
        };
        let at = Position {
            hidden: &hidden,
            ids: &ids,
            ids_rows: chunks.iter().map(|k| k.ids.as_slice()).collect(),
            probe: &probe,
        };
        let row_states: Vec<&FastState> = rows.iter().map(|&s| &states[s]).collect();
        let row_histories: Vec<History> = rows.iter().map(|&s| histories[s].clone()).collect();
        let (obs, _) =
            chunk_features(lm, &at, &row_states, &row_histories, shape).map_err(eval_err)?;
        let actions = choose(&obs)?;
        if actions.len() != rows.len() || actions.iter().any(|&a| a >= ACTIONS.len()) {
            return Err(crate::error::Error::Run(format!(
                "a policy chose {actions:?} for {} rows of {} actions",
                rows.len(),
                ACTIONS.len()
            )));
        }
        let decisions: Vec<Decision> = actions.iter().map(|&a| ACTIONS[a]).collect();
        let (losses, next) =
            act_rows(lm, &hidden, &ids, &row_states, &decisions).map_err(eval_err)?;
        for (j, &s) in rows.iter().enumerate() {
            histories[s].observe(probe.none_loss[j], decisions[j].cost());
            states[s] = next[j].clone();
            steps.push(Step {
                slot: s,
                chunk: c,
                last: c + 1 == streams[s].len(),
                action: actions[j],
                loss: losses[j],
                none_loss: probe.none_loss[j],
            });
        }
        obs_all.extend(obs);
    }
    Ok(Episodes {
        steps,
        obs: obs_all,
    })
}

/// Mean cost and mean loss per chunk of `steps`.
pub fn means(steps: &[Step]) -> (f64, f64) {
    let n = steps.len().max(1) as f64;
    (
        steps.iter().map(Step::cost).sum::<f64>() / n,
        steps.iter().map(|s| s.loss).sum::<f64>() / n,
    )
}
