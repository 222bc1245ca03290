//! [`Method`]: a gating policy named by its short name, as an experiment's method list spells it
//! (`"skip"`, `"update_2"`, `"random_seed7"`, `"ours"`, …). It parses once, where the list is
//! read, and carries its [`GateConfig`] from there; its name is [`GateConfig::name`], the one
//! name of the policy.
//!
//! One method has no fixed policy: `ours_lh` ("Ours, long horizon") is the controller an
//! experiment chose on its validation split ([`Method::Selected`]); the evaluation resolves it
//! with [`Method::resolve`].
//!
//! Three methods of stream mode are not training-free gates: `none` ([`Method::Backbone`]), the
//! backbone without the fast layer, `greedy_oracle` ([`Method::GreedyOracle`]), a reference that
//! tries every action on the model and keeps the best under a cost multiplier, and `ppo`
//! ([`Method::Learned`]), the learned gate trained by `ponder train gate`.

use std::fmt;
use std::str::FromStr;

use crate::config::GateConfig;
use crate::error::{Error, Result};

/// The name of [`Method::Selected`].
pub const SELECTED: &str = "ours_lh";

/// The name of [`Method::Backbone`].
pub const BACKBONE: &str = "none";

/// The name of [`Method::GreedyOracle`].
pub const GREEDY_ORACLE: &str = "greedy_oracle";

/// The name of [`Method::Learned`].
pub const LEARNED: &str = "ppo";

/// A policy named by its short name. In TOML and JSON it is that name, a string.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Method {
    /// A policy with fixed settings.
    Policy(GateConfig),
    /// The controller chosen on the validation split (`ours_lh`).
    Selected,
    /// The backbone alone, without the fast layer (`none`; stream mode's reference).
    Backbone,
    /// Stream mode's labelled reference (`greedy_oracle`): at each chunk every action is tried
    /// from the current state, and the one with the least loss plus a multiplier times its cost
    /// is kept.
    GreedyOracle,
    /// Stream mode's learned gate (`ppo`): the actor-critic trained with PPO under a PID
    /// Lagrangian, deterministic at inference.
    Learned,
}

impl Method {
    /// The policy; `None` for [`Method::Selected`] (see [`Method::resolve`]) and the methods
    /// that are not gates.
    pub fn config(&self) -> Option<&GateConfig> {
        match self {
            Method::Policy(config) => Some(config),
            _ => None,
        }
    }

    /// Whether the method exists only in stream mode (`none`, `greedy_oracle`, `ppo`).
    pub fn stream_only(&self) -> bool {
        matches!(
            self,
            Method::Backbone | Method::GreedyOracle | Method::Learned
        )
    }

    /// The policy, with [`Method::Selected`] taken from `selected`; an error when that is
    /// needed and `None`.
    pub fn resolve<'a>(&'a self, selected: Option<&'a GateConfig>) -> Result<&'a GateConfig> {
        match self {
            Method::Policy(config) => Ok(config),
            Method::Selected => selected.ok_or_else(|| {
                Error::Config(format!(
                    "method \"{SELECTED}\" is the controller chosen on the validation split, and \
                     none has been chosen (run the validation comparison with [eval.select] first)"
                ))
            }),
            Method::Backbone | Method::GreedyOracle | Method::Learned => Err(Error::Config(format!(
                "method \"{}\" is not a gate: it runs only in stream mode ([eval] mode = \"stream\")",
                self.name()
            ))),
        }
    }

    /// The method's one name: [`GateConfig::name`], or `ours_lh`.
    pub fn name(&self) -> String {
        match self {
            Method::Policy(config) => config.name(),
            Method::Selected => SELECTED.to_string(),
            Method::Backbone => BACKBONE.to_string(),
            Method::GreedyOracle => GREEDY_ORACLE.to_string(),
            Method::Learned => LEARNED.to_string(),
        }
    }

    /// The inner steps of its updates when they are not 1: `Some(k)` for `update_2` and
    /// `update_4`; `None` for every policy whose updates are UPDATE_1 (or that never updates).
    pub fn steps_beyond_one(&self) -> Option<u32> {
        match self {
            Method::Policy(GateConfig::Update { steps }) if *steps > 1 => Some(*steps),
            _ => None,
        }
    }
}

impl From<GateConfig> for Method {
    fn from(config: GateConfig) -> Self {
        Self::Policy(config)
    }
}

impl FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            SELECTED => Self::Selected,
            BACKBONE => Self::Backbone,
            GREEDY_ORACLE => Self::GreedyOracle,
            LEARNED => Self::Learned,
            _ => Self::Policy(s.parse()?),
        })
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
            toml::from_str(r#"methods = ["skip", "update_2", "random_seed7", "ours", "ours_lh"]"#)
                .unwrap();
        assert_eq!(list.methods[1].steps_beyond_one(), Some(2));
        assert_eq!(
            list.methods[3].config(),
            Some(&GateConfig::original_recon())
        );
        assert_eq!(list.methods[0].steps_beyond_one(), None);
        let back = toml::to_string(&list).unwrap();
        assert_eq!(
            back.trim(),
            r#"methods = ["skip", "update_2", "random_seed7", "ours", "ours_lh"]"#
        );
        let selected = &list.methods[4];
        assert_eq!(selected, &Method::Selected);
        let err = selected.resolve(None).unwrap_err();
        assert!(err.to_string().contains("ours_lh"), "{err}");
        let chosen = GateConfig::pid_recommended();
        assert_eq!(selected.resolve(Some(&chosen)).unwrap(), &chosen);
        assert_eq!(
            list.methods[3].resolve(Some(&chosen)).unwrap(),
            &GateConfig::original_recon()
        );
    }

    #[test]
    fn stream_methods_parse_and_are_not_gates() {
        for (name, method) in [
            ("none", Method::Backbone),
            ("greedy_oracle", Method::GreedyOracle),
            ("ppo", Method::Learned),
        ] {
            let parsed: Method = name.parse().unwrap();
            assert_eq!(parsed, method);
            assert_eq!(parsed.name(), name);
            assert!(parsed.stream_only() && parsed.config().is_none());
            let err = parsed.resolve(None).unwrap_err().to_string();
            assert!(err.contains("stream mode"), "{err}");
        }
        assert!(!Method::Selected.stream_only());
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
