//! Actions of stream mode on carried fast-weight states: one action on a batch of rows
//! ([`act`]), and each row's own action on its own state, rows of one action run as one batch
//! ([`act_rows`]). Every stream-mode method's pass ([`crate::carry`]) and the learned gate's
//! training rollouts run their actions through here.

use candle::Tensor;
use ponder_gate::{Decision, ACTIONS};
use ponder_model::{FastState, PonderLm};

use crate::error::Result;

/// The per-sequence values of a `(b)` tensor, as f64.
pub(crate) fn to_vec(t: &Tensor) -> Result<Vec<f64>> {
    Ok(ponder_nn::to_f64(t)?.to_vec1::<f64>()?)
}

/// The state of `rows`, stacked from the per-stream states.
pub(crate) fn gather(states: &[FastState], rows: &[usize]) -> Result<FastState> {
    let parts: Vec<&FastState> = rows.iter().map(|&r| &states[r]).collect();
    Ok(FastState::cat(&parts)?)
}

/// `decision` on every row of `state`: its per-row losses and the state after it (a read leaves
/// the state as it was).
///
/// # Shapes
/// - `hidden`: `(b, t, d)`; `ids`: `(b, t)`; `state` for `b` sequences.
pub fn act(
    lm: &PonderLm,
    hidden: &Tensor,
    ids: &Tensor,
    state: &FastState,
    decision: Decision,
) -> Result<(Vec<f64>, FastState)> {
    let out = match decision {
        Decision::Skip => lm.read(hidden, ids, state)?,
        Decision::Update(k) => lm.update(hidden, ids, state, k as usize)?,
    };
    let loss = to_vec(&lm.next_token_loss(&out.features, ids)?)?;
    Ok((loss, out.state))
}

/// Each row's own decision on its own state (`row_states`, one sequence each): rows grouped by
/// action, one batch per group (the whole batch when every row agrees); per-row losses and
/// per-row states after it.
///
/// # Shapes
/// - `hidden`: `(rows, t, d)`; `ids`: `(rows, t)`; one state and one decision per row.
pub fn act_rows(
    lm: &PonderLm,
    hidden: &Tensor,
    ids: &Tensor,
    row_states: &[&FastState],
    decisions: &[Decision],
) -> Result<(Vec<f64>, Vec<FastState>)> {
    let n = decisions.len();
    if decisions.iter().all(|&d| d == decisions[0]) {
        let state = FastState::cat(row_states)?;
        let (losses, next) = act(lm, hidden, ids, &state, decisions[0])?;
        let rows = (0..n).map(|r| next.row(r)).collect::<candle::Result<_>>()?;
        return Ok((losses, rows));
    }
    let mut losses = vec![0.0; n];
    let mut rows: Vec<Option<FastState>> = vec![None; n];
    for action in ACTIONS {
        let group: Vec<usize> = (0..n).filter(|&r| decisions[r] == action).collect();
        if group.is_empty() {
            continue;
        }
        let idx = Tensor::from_vec(
            group.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            group.len(),
            hidden.device(),
        )?;
        let parts: Vec<&FastState> = group.iter().map(|&r| row_states[r]).collect();
        let sub_state = FastState::cat(&parts)?;
        let (l, next) = act(
            lm,
            &hidden.index_select(&idx, 0)?,
            &ids.index_select(&idx, 0)?,
            &sub_state,
            action,
        )?;
        for (j, &r) in group.iter().enumerate() {
            losses[r] = l[j];
            rows[r] = Some(next.row(j)?);
        }
    }
    let rows = rows
        .into_iter()
        .zip(decisions)
        .map(|(s, d)| {
            s.ok_or_else(|| {
                crate::error::Error::Config(format!(
                    "a gate decided {d:?}, which is not an action of stream mode \
                     (SKIP, UPDATE_1, UPDATE_2, UPDATE_4)"
                ))
            })
        })
        .collect::<Result<_>>()?;
    Ok((losses, rows))
}
