//! Deterministic train / validation / test splits by a hash of each file's relative path, never
//! by position: adding or removing a file never moves another file to a different split.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training data.
    Train,
    /// Held-out data for validation.
    Validation,
    /// Held-out data for the final evaluation.
    Test,
}

/// Fractions of the validation and test splits; the rest is training data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFractions {
    /// Fraction of files in the validation split.
    pub validation: f64,
    /// Fraction of files in the test split.
    pub test: f64,
}

impl SplitFractions {
    /// Checks `0 <= validation, test` and `validation + test <= 1`.
    pub fn validate(&self) -> Result<()> {
        let ok = self.validation >= 0.0 && self.test >= 0.0 && self.validation + self.test <= 1.0;
        if !ok {
            return Err(Error::Windows(format!(
                "split fractions validation {} and test {} must be non-negative and sum to at most 1",
                self.validation, self.test
            )));
        }
        Ok(())
    }

    /// The split of the file at `rel_path`: a point in `[0, 1)` from SHA-256 of the path (and a
    /// salt, so different experiments can draw different splits), test first, then validation.
    pub fn split_of(&self, rel_path: &str, salt: &str) -> Split {
        let digest = Sha256::new()
            .chain_update(salt.as_bytes())
            .chain_update([0u8])
            .chain_update(rel_path.as_bytes())
            .finalize();
        let x = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) as f64 / 2f64.powi(64);
        if x < self.test {
            Split::Test
        } else if x < self.test + self.validation {
            Split::Validation
        } else {
            Split::Train
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_are_stable_and_near_their_fractions() {
        let f = SplitFractions {
            validation: 0.1,
            test: 0.2,
        };
        let paths: Vec<String> = (0..5000)
            .map(|i| format!("pkg{}/mod{i}.py", i % 37))
            .collect();
        let count =
            |s: Split| paths.iter().filter(|p| f.split_of(p, "") == s).count() as f64 / 5000.0;
        assert!((count(Split::Test) - 0.2).abs() < 0.03);
        assert!((count(Split::Validation) - 0.1).abs() < 0.03);
        // Stable: the same path always lands in the same split, whatever else exists.
        assert_eq!(f.split_of("a/b.py", "x"), f.split_of("a/b.py", "x"));
        assert!(SplitFractions {
            validation: 0.7,
            test: 0.4
        }
        .validate()
        .is_err());
    }
}
