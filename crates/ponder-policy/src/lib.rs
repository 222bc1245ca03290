//! The learned gate of ponder: an actor-critic that chooses SKIP / UPDATE_1 / UPDATE_2 /
//! UPDATE_4 for each chunk of a fast-weight stream, trained with PPO while a PID Lagrangian holds
//! the average cost to a budget.
//!
//! - [`net::ActorCritic`]: the network, with CleanRL's orthogonal initialization and the
//!   original's dropout in training mode;
//! - [`obs_norm::ObsNorm`]: running normalization of the feature vectors;
//! - [`gae::advantages`]: generalized advantage estimation over a time-major rollout;
//! - [`lagrangian::PidLagrangian`]: the budget controller (Stooke et al. 2020, and the original
//!   PonderTTT's incremental form as a preset);
//! - [`ppo_config::PpoConfig`]: PPO's settings, with CleanRL's and the original PonderTTT's as
//!   presets;
//! - [`ppo::Ppo`]: sampling, greedy actions and the PPO update;
//! - [`toy::CarryStream`]: a stream environment with irreversible updates whose budgeted optimum
//!   is known in closed form, on which `tests/learning.rs` checks the learner.
//!
//! Design and status: `docs/design/policy.md`.
//!
//! The training-free gates live in `ponder-gate`, which builds without Candle; this crate is for
//! users who train or run the learned one.

pub mod error;
pub mod gae;
pub mod lagrangian;
pub mod net;
pub mod obs_norm;
pub mod ppo;
pub mod ppo_config;
pub mod toy;

pub use error::{Error, Result};
pub use lagrangian::{PidConfig, PidForm, PidLagrangian};
pub use net::{Activation, ActorCritic, NetConfig};
pub use obs_norm::ObsNorm;
pub use ppo::{sample_action, Ppo, Rollout, UpdateStats};
pub use ppo_config::{KlEstimator, Minibatch, PpoConfig};
