//! [`Method`]: a gating policy named by its short name, as an experiment's method list spells it
//! (`"skip"`, `"update_2"`, `"random_seed7"`, `"ours"`, …). It parses once, where the list is
//! read, and carries its [`GateConfig`] from there; its name is [`GateConfig::name`], the one
//! name of the policy.

use std::fmt;
use std::str::FromStr;

use crate::config::GateConfig;
use crate::error::{Error, Result};

/// A policy named by its short name. In TOML and JSON it is that name, a string.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Method(GateConfig);

impl Method {
    /// The policy.
    pub fn config(&self) -> &GateConfig {
        &self.0
    }

    /// The policy's one name ([`GateConfig::name`]).
    pub fn name(&self) -> String {
        self.0.name()
    }

    /// The inner steps of its updates when they are not 1: `Some(k)` for `update_2` and
    /// `update_4`; `None` for every policy whose updates are UPDATE_1 (or that never updates).
    pub fn steps_beyond_one(&self) -> Option<u32> {
        match self.0 {
            GateConfig::Update { steps } if steps > 1 => Some(steps),
            _ => None,
        }
    }
}

impl From<GateConfig> for Method {
    fn from(config: GateConfig) -> Self {
        Self(config)
    }
}

impl FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(Self(s.parse()?))
    }
}

impl TryFrom<String> for Method {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Method> for String {
    fn from(m: Method) -> Self {
        m.name()
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    struct List {
        methods: Vec<Method>,
    }

    #[test]
    fn a_list_of_names_round_trips_through_toml() {
        let list: List =
            toml::from_str(r#"methods = ["skip", "update_2", "random_seed7", "ours"]"#).unwrap();
        assert_eq!(list.methods[1].steps_beyond_one(), Some(2));
        assert_eq!(list.methods[3].config(), &GateConfig::original_recon());
        assert_eq!(list.methods[0].steps_beyond_one(), None);
        let back = toml::to_string(&list).unwrap();
        assert_eq!(
            back.trim(),
            r#"methods = ["skip", "update_2", "random_seed7", "ours"]"#
        );
    }

    #[test]
    fn a_bad_name_is_an_error_naming_it() {
        let err = toml::from_str::<List>(r#"methods = ["skip", "magic"]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown method \"magic\""), "{err}");
        let err = toml::from_str::<List>(r#"methods = ["update_3"]"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected 1, 2 or 4"), "{err}");
    }
}
