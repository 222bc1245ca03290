//! [`StateMode`]: whether a fast layer's weights start fresh at every chunk or carry from chunk
//! to chunk of a file, for evaluation (`[eval] mode`) and training (`[fast] mode`).

use serde::{Deserialize, Serialize};

/// How the fast weights live across the chunks of a file (`[eval] mode`, `[fast] mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateMode {
    /// Every chunk starts from the learned initial fast weights and forgets its update (the
    /// paper's protocol, the default).
    #[default]
    Reset,
    /// The fast weights of a file carry from chunk to chunk (`docs/design/stream.md`).
    Stream,
}

impl StateMode {
    /// Whether this is the default, reset mode (left out of a written config).
    pub fn is_reset(&self) -> bool {
        *self == Self::Reset
    }

    /// The name in configs (`reset`, `stream`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Reset => "reset",
            Self::Stream => "stream",
        }
    }
}
