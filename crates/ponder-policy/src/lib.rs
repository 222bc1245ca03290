//! The learned gate of ponder: an actor-critic that chooses SKIP / UPDATE_1 / UPDATE_2 /
//! UPDATE_4 for each chunk of a fast-weight stream, trained with PPO while a PID Lagrangian holds
//! the average cost to a budget.
//!
//! - [`net::ActorCritic`]: the network, with CleanRL's orthogonal initialization;
//! - [`gae::advantages`]: generalized advantage estimation over a time-major rollout;
//! - [`lagrangian::PidLagrangian`]: the budget controller (Stooke et al. 2020, and the original
//!   PonderTTT's incremental form as a preset).
//!
//! The training-free gates live in `ponder-gate`, which builds without Candle; this crate is for
//! users who train or run the learned one.

pub mod error;
pub mod gae;
pub mod lagrangian;
pub mod net;

pub use error::{Error, Result};
pub use lagrangian::{PidConfig, PidForm, PidLagrangian};
pub use net::{Activation, ActorCritic, NetConfig};
