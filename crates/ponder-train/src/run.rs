//! Run folders: the resolved config, seed and git revision written first; `metrics.jsonl`
//! (deterministic: same config and seed give the same bytes) and `timing.jsonl` (wall-clock
//! figures, which are not); checkpoints written atomically and resumed exactly.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle::{Device, Tensor, Var};
use ponder_nn::optim::AdamW;

use crate::error::{Error, Result};

/// A run folder.
pub struct RunDir {
    dir: PathBuf,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename
/// ([`ponder_base::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ponder_base::write_atomic(path, bytes).map_err(io(path))
}

impl RunDir {
    /// Opens the run folder for `config_toml`: a fresh folder is created; an existing one is
    /// accepted only with `resume`, and only if it was made by the same resolved config.
    pub fn open(
        dir: &Path,
        config_toml: &str,
        seed: u64,
        git_rev: &str,
        resume: bool,
    ) -> Result<Self> {
        let config_path = dir.join("config.toml");
        if config_path.is_file() {
            let existing = std::fs::read_to_string(&config_path).map_err(io(&config_path))?;
            if !resume {
                return Err(Error::Run(format!(
                    "{} already holds a run; pass --resume to continue it, or choose another run.out_dir",
                    dir.display()
                )));
            }
            if existing != config_toml {
                return Err(Error::Run(format!(
                    "{}: resuming into a run folder made by a different config (compare its config.toml with yours)",
                    dir.display()
                )));
            }
        } else {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            write_atomic(&config_path, config_toml.as_bytes())?;
            write_atomic(&dir.join("seed"), format!("{seed}\n").as_bytes())?;
            write_atomic(&dir.join("git_rev"), format!("{git_rev}\n").as_bytes())?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Appends one JSON record to `metrics.jsonl`.
    pub fn metric(&self, record: &serde_json::Value) -> Result<()> {
        append(&self.dir.join("metrics.jsonl"), record)
    }

    /// Appends one JSON record to `timing.jsonl` (wall-clock figures, not deterministic).
    pub fn timing(&self, record: &serde_json::Value) -> Result<()> {
        append(&self.dir.join("timing.jsonl"), record)
    }

    /// Number of lines in `metrics.jsonl`.
    pub fn metric_lines(&self) -> Result<usize> {
        let path = self.dir.join("metrics.jsonl");
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(t.lines().count()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Keeps the first `lines` lines of `metrics.jsonl` (what the checkpoint had seen).
    pub fn truncate_metrics(&self, lines: usize) -> Result<()> {
        let path = self.dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let kept: String = text.lines().take(lines).map(|l| format!("{l}\n")).collect();
        write_atomic(&path, kept.as_bytes())
    }

    /// Writes a checkpoint: named tensors and a JSON state, into `checkpoint/` atomically (a new
    /// folder is written, then swapped in by renames). Tensors on any device are copied to the
    /// CPU first; the file does not record where they came from, so it loads on any device.
    pub fn save_checkpoint(
        &self,
        tensors: &BTreeMap<String, Tensor>,
        state: &serde_json::Value,
    ) -> Result<()> {
        let tmp = self.dir.join("checkpoint.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        ponder_nn::save_safetensors(&tmp.join("tensors.safetensors"), tensors)?;
        std::fs::write(
            tmp.join("state.json"),
            serde_json::to_string_pretty(state).expect("json"),
        )
        .map_err(io(&tmp))?;
        let live = self.dir.join("checkpoint");
        let old = self.dir.join("checkpoint.old");
        let _ = std::fs::remove_dir_all(&old);
        if live.exists() {
            std::fs::rename(&live, &old).map_err(io(&live))?;
        }
        std::fs::rename(&tmp, &live).map_err(io(&live))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// The latest complete checkpoint, if any (a crash between the two renames leaves
    /// `checkpoint.old`, which is used then), with its tensors on `device`.
    pub fn load_checkpoint(
        &self,
        device: &Device,
    ) -> Result<Option<(BTreeMap<String, Tensor>, serde_json::Value)>> {
        for name in ["checkpoint", "checkpoint.old"] {
            let dir = self.dir.join(name);
            let state_path = dir.join("state.json");
            if !state_path.is_file() {
                continue;
            }
            let state: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(&state_path).map_err(io(&state_path))?,
            )
            .map_err(|e| Error::Run(format!("{}: {e}", state_path.display())))?;
            let tensors = candle::safetensors::load(dir.join("tensors.safetensors"), device)?;
            return Ok(Some((tensors.into_iter().collect(), state)));
        }
        Ok(None)
    }
}

impl RunDir {
    /// Writes the manifest of every data source into `data/` of the run folder, so the run
    /// records exactly which files (and bytes, by SHA-256) it saw.
    pub fn record_data(&self, manifests: &[ponder_data::Manifest]) -> Result<()> {
        let dir = self.dir.join("data");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        for m in manifests {
            let safe: String = m
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            m.save(&dir.join(format!("{safe}.manifest.json")))?;
        }
        Ok(())
    }

    /// Saves the trainable `vars` (as `model.<name>`), the optimizer's state (`optim.<name>`),
    /// the step and the number of metric lines written so far, as one atomic checkpoint.
    pub fn checkpoint_training(
        &self,
        vars: &[(String, Var)],
        opt: &AdamW,
        step: u64,
    ) -> Result<()> {
        let mut tensors: BTreeMap<String, Tensor> = vars
            .iter()
            .map(|(k, v)| (format!("model.{k}"), v.as_tensor().clone()))
            .collect();
        tensors.extend(
            opt.state()
                .into_iter()
                .map(|(k, v)| (format!("optim.{k}"), v)),
        );
        let state = serde_json::json!({"step": step, "adam_steps": opt.steps(), "metric_lines": self.metric_lines()?});
        self.save_checkpoint(&tensors, &state)
    }

    /// Restores `vars` and `opt` from the run's checkpoint, if it has one, and cuts
    /// `metrics.jsonl` back to what that checkpoint had seen; returns the step to continue
    /// from (0 for a fresh run). `device` is where the vars live; the checkpoint may have been
    /// written from any device.
    pub fn resume_training(
        &self,
        vars: &[(String, Var)],
        opt: &mut AdamW,
        device: &Device,
    ) -> Result<u64> {
        let Some((tensors, state)) = self.load_checkpoint(device)? else {
            return Ok(0);
        };
        for (name, var) in vars {
            let t = tensors.get(&format!("model.{name}")).ok_or_else(|| {
                Error::Run(format!(
                    "{}: checkpoint lacks model.{name}",
                    self.dir.display()
                ))
            })?;
            var.set(t)?;
        }
        let opt_state: BTreeMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("optim.").map(|k| (k.to_string(), v.clone())))
            .collect();
        let field = |key: &str| {
            state[key].as_u64().ok_or_else(|| {
                Error::Run(format!(
                    "{}: checkpoint state lacks {key}",
                    self.dir.display()
                ))
            })
        };
        opt.load_state(&opt_state, field("adam_steps")?)?;
        self.truncate_metrics(field("metric_lines")? as usize)?;
        let step = field("step")?;
        tracing::info!(step, "resumed from checkpoint");
        Ok(step)
    }
}

fn append(path: &Path, record: &serde_json::Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    writeln!(f, "{record}").map_err(io(path))
}
