//! Sweeps (`cargo xtask sweep`): a base experiment config, overrides for every run, and axes of
//! dotted config keys whose values combine into points. Each point is an ordinary experiment
//! (the base config, the sweep's `set`, its axis values and its own `run.out_dir`); the phases
//! named `shared` run once, from the base config, and every point uses what they made (a
//! backbone trained once serves every fast-layer seed). [`SweepLayout`] names the sweep's
//! folders; `ponder sweep plan` prints the points, `ponder sweep aggregate` summarises them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;
use crate::error::{io, Error, Result};
use crate::layout::{Layout, SweepLayout};

/// The phases a sweep may share: those made from the base config alone.
pub const SHAREABLE: &[&str] = &["data", "backbone"];

/// Config keys (prefixes) whose change makes another backbone, which a shared backbone cannot
/// serve.
const BACKBONE_KEYS: &[&str] = &["data.", "model.", "backbone."];

/// How the axes combine into points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// Every combination of the axes' values.
    Grid,
    /// The axes' values side by side (all axes of one length).
    Zip,
}

/// One axis: a dotted config key and its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    /// The dotted key (`run.seed`, `eval.budget`, `fast.layer`, …).
    pub key: String,
    /// Its values, as TOML values.
    pub values: Vec<toml::Value>,
}

/// A sweep file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// The base experiment config.
    pub base: PathBuf,
    /// Where the sweep writes ([`SweepLayout`]).
    pub out_dir: PathBuf,
    /// `--set` overrides for every run of the sweep, the shared phases included.
    pub set: Vec<String>,
    /// Phases run once from the base config, before the points (a subset of [`SHAREABLE`]).
    pub shared: Vec<String>,
    /// Phases run for every point, in order (`cargo xtask reproduce`'s phase names).
    pub phases: Vec<String>,
    /// How the axes combine.
    pub combine: Combine,
    /// The axes.
    pub axes: Vec<Axis>,
}

/// One point of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Its folder's name: `key=value` for each axis, joined by `,`.
    pub name: String,
    /// Each axis's key and value, in the axes' order.
    pub values: Vec<(String, toml::Value)>,
    /// Its `--set` overrides: the sweep's, the axes', its `run.out_dir` and, where the backbone
    /// is shared, its `fast.backbone`.
    pub overrides: Vec<String>,
}

impl Point {
    /// Each axis's key and its value as written in the folder name.
    pub fn labels(&self) -> Vec<(String, String)> {
        self.values
            .iter()
            .map(|(k, v)| (k.clone(), bare(v)))
            .collect()
    }
}

/// A value as a folder-name piece: strings bare, other values as TOML writes them, `/` and
/// spaces as `_`.
fn bare(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
    .replace(['/', ' '], "_")
}

/// Whether a folder-name piece can be read back from a point's name and a CSV cell: letters,
/// digits and `._+-` only (no `,` or `=`, which separate the axes, no quotes).
fn readable(piece: &str) -> bool {
    !piece.is_empty()
        && piece
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
}

/// `key="value"` for a path-valued override.
fn path_override(key: &str, path: &Path) -> String {
    format!("{key}={}", toml::Value::String(path.display().to_string()))
}

impl SweepConfig {
    /// Reads and checks a sweep file; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let sweep: Self = toml::from_str(&text).map_err(|e| {
            Error::Config(format!("{}: {}", path.display(), e.to_string().trim_end()))
        })?;
        sweep
            .check()
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Ok(sweep)
    }

    /// The checks that need no other file: axes with values, each key once and none that the
    /// sweep sets itself, zipped axes of one length, values that make distinct folder names,
    /// shared phases that can be shared and a shared backbone no axis changes.
    fn check(&self) -> std::result::Result<(), String> {
        if self.axes.is_empty() {
            return Err("no [[axes]]: a sweep varies at least one key".into());
        }
        let owned = self.owned_keys();
        for (i, axis) in self.axes.iter().enumerate() {
            if axis.values.is_empty() {
                return Err(format!("axis `{}` has no values", axis.key));
            }
            if self.axes[..i].iter().any(|a| a.key == axis.key) {
                return Err(format!("two axes vary `{}`", axis.key));
            }
            if owned.contains(&axis.key.as_str()) {
                return Err(format!(
                    "axis `{}`: the sweep sets that key itself for every point",
                    axis.key
                ));
            }
            for (j, v) in axis.values.iter().enumerate() {
                if !readable(&bare(v)) {
                    return Err(format!(
                        "axis `{}`: value {v} would name a folder with characters other than letters, digits and ._+-",
                        axis.key
                    ));
                }
                if axis.values[..j].iter().any(|w| bare(w) == bare(v)) {
                    return Err(format!(
                        "axis `{}`: values {v} and another one name the same folder",
                        axis.key
                    ));
                }
            }
        }
        if let Some(o) = self.set.iter().find(|o| {
            owned
                .iter()
                .any(|k| o.split_once('=').is_some_and(|(key, _)| key.trim() == *k))
        }) {
            return Err(format!(
                "set = [\"{o}\"]: the sweep sets that key itself for every point"
            ));
        }
        if self.combine == Combine::Zip {
            let n = self.axes[0].values.len();
            if let Some(a) = self.axes.iter().find(|a| a.values.len() != n) {
                return Err(format!(
                    "combine = \"zip\" needs axes of one length: `{}` has {}, `{}` has {n}",
                    a.key,
                    a.values.len(),
                    self.axes[0].key
                ));
            }
        }
        for phase in &self.shared {
            if !SHAREABLE.contains(&phase.as_str()) {
                return Err(format!(
                    "shared = [\"{phase}\"]: only {} can be shared (made from the base config alone)",
                    SHAREABLE.join(", ")
                ));
            }
        }
        if self.shares_backbone() {
            for axis in &self.axes {
                if BACKBONE_KEYS.iter().any(|p| axis.key.starts_with(p)) {
                    return Err(format!(
                        "axis `{}` changes the backbone, which shared = [\"backbone\"] trains once; take \"backbone\" out of `shared`",
                        axis.key
                    ));
                }
            }
        }
        Ok(())
    }

    /// The keys the sweep sets for every point: its folder and, with a shared backbone, the
    /// backbone's.
    fn owned_keys(&self) -> Vec<&'static str> {
        let mut keys = vec!["run.out_dir"];
        if self.shares_backbone() {
            keys.push("fast.backbone");
        }
        keys
    }

    /// Whether the backbone is trained once for every point.
    pub fn shares_backbone(&self) -> bool {
        self.shared.iter().any(|p| p == "backbone")
    }

    /// The sweep's folders.
    pub fn layout(&self) -> SweepLayout {
        SweepLayout::new(&self.out_dir)
    }

    /// The overrides of the shared phases: `set` and the shared folder as `run.out_dir`.
    pub fn shared_overrides(&self) -> Vec<String> {
        let mut o = self.set.clone();
        o.push(path_override("run.out_dir", &self.layout().shared()));
        o
    }

    /// The points, in order (the last axis varies fastest in a grid).
    pub fn points(&self) -> Vec<Point> {
        let combos: Vec<Vec<usize>> = match self.combine {
            Combine::Zip => (0..self.axes[0].values.len())
                .map(|i| vec![i; self.axes.len()])
                .collect(),
            Combine::Grid => {
                let mut combos = vec![Vec::new()];
                for axis in &self.axes {
                    combos = combos
                        .into_iter()
                        .flat_map(|c| {
                            (0..axis.values.len()).map(move |i| {
                                let mut c = c.clone();
                                c.push(i);
                                c
                            })
                        })
                        .collect();
                }
                combos
            }
        };
        let layout = self.layout();
        let backbone = Layout::new(layout.shared()).backbone().model();
        combos
            .into_iter()
            .map(|c| {
                let values: Vec<(String, toml::Value)> = self
                    .axes
                    .iter()
                    .zip(&c)
                    .map(|(a, &i)| (a.key.clone(), a.values[i].clone()))
                    .collect();
                let name = values
                    .iter()
                    .map(|(k, v)| format!("{k}={}", bare(v)))
                    .collect::<Vec<_>>()
                    .join(",");
                let mut overrides = self.set.clone();
                overrides.extend(values.iter().map(|(k, v)| format!("{k}={v}")));
                overrides.push(path_override("run.out_dir", &layout.point(&name)));
                if self.shares_backbone() {
                    overrides.push(path_override("fast.backbone", &backbone));
                }
                Point {
                    name,
                    values,
                    overrides,
                }
            })
            .collect()
    }

    /// Every point's resolved config, checked: a key that does not exist or a value of the
    /// wrong type is an error naming the point.
    pub fn configs(&self) -> Result<Vec<(Point, ExperimentConfig)>> {
        let base = ExperimentConfig::load(&self.base, &self.shared_overrides())?;
        if self.shares_backbone() && base.backbone.is_none() {
            return Err(Error::Config(format!(
                "shared = [\"backbone\"], but {} trains no backbone (its fast.backbone is a pretrained model)",
                self.base.display()
            )));
        }
        self.points()
            .into_iter()
            .map(|p| {
                let config = ExperimentConfig::load(&self.base, &p.overrides)
                    .map_err(|e| Error::Config(format!("sweep point {}: {e}", p.name)))?;
                Ok((p, config))
            })
            .collect()
    }

    /// What the sweep was made from, as written to [`SweepLayout::lock`]: the sweep and the
    /// base config as resolved.
    pub fn identity(&self) -> Result<String> {
        let base = ExperimentConfig::load(&self.base, &self.set)?;
        let sweep = toml::to_string_pretty(self).expect("sweep serializes");
        Ok(format!(
            "# The sweep\n{sweep}\n# Its base config ({}), resolved\n{}",
            self.base.display(),
            base.to_toml()
        ))
    }

    /// Writes the identity into a fresh sweep folder, or checks it against the one there: a
    /// folder made by another sweep file or base config is refused, as a run folder is.
    pub fn claim(&self) -> Result<()> {
        let identity = self.identity()?;
        let lock = self.layout().lock();
        if lock.is_file() {
            let existing = std::fs::read_to_string(&lock).map_err(io(&lock))?;
            if existing != identity {
                return Err(Error::Run(format!(
                    "{} was made by a different sweep file or base config (compare {} with yours); delete it to redo the sweep, or choose another out_dir",
                    self.out_dir.display(),
                    lock.display()
                )));
            }
            return Ok(());
        }
        std::fs::create_dir_all(&self.out_dir).map_err(io(&self.out_dir))?;
        crate::run_dir::write_atomic(&lock, identity.as_bytes())
    }
}

#[cfg(test)]
#[path = "sweep_tests.rs"]
mod tests;
