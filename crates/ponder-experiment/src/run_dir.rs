//! [`RunDir`]: a run folder opened for one resolved config. The config, seed and git revision
//! are written first; [`Metric`]s and [`Timing`]s are appended; checkpoints are swapped in
//! atomically and resumed exactly; a run ends with a [`Done`] record, by which a later command
//! with the same config recognises it as finished.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use candle::{Device, Tensor, Var};
use ponder_nn::optim::AdamW;

use crate::error::{io, Error, Result};
use crate::layout::RunFolder;
use crate::records::{CheckpointState, Done, Metric, Timing};

/// A run folder in use.
pub struct RunDir {
    folder: RunFolder,
}

/// How [`RunDir::open`] treats a folder that already holds a run of the same config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Continue an unfinished run (a fresh folder is simply created).
    pub resume: bool,
    /// Leave a finished run alone: [`RunDir::open`] returns `None`.
    pub skip_finished: bool,
}

/// Writes `bytes` to `path` atomically ([`ponder_base::write_atomic`]), naming the file in an
/// error.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ponder_base::write_atomic(path, bytes).map_err(io(path))
}

/// Writes `value` as pretty JSON with a final newline, atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("values serialize") + "\n";
    write_atomic(path, text.as_bytes())
}

/// Reads a JSON file into `T`, naming the file in an error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| Error::Record {
        path: path.to_path_buf(),
        line: 1,
        reason: format!("not the expected JSON ({e})"),
    })
}

/// Reads every line of a JSON Lines file into `T` (none when the file does not exist).
pub fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Record {
                path: path.to_path_buf(),
                line: i + 1,
                reason: e.to_string(),
            })
        })
        .collect()
}

impl RunDir {
    /// Opens `folder` for the resolved config `identity`: a fresh folder is created and the
    /// identity, seed and git revision written first. A folder made by another identity is an
    /// error; one made by the same identity is continued with `options.resume`, and when
    /// finished is skipped (`Ok(None)`) with `options.skip_finished`.
    pub fn open(
        folder: &RunFolder,
        identity: &str,
        seed: u64,
        git_rev: &str,
        options: OpenOptions,
    ) -> Result<Option<Self>> {
        let dir = folder.path();
        let config_path = folder.config();
        if config_path.is_file() {
            let existing = std::fs::read_to_string(&config_path).map_err(io(&config_path))?;
            let finished = Self::is_finished(folder)?;
            if existing != identity {
                return Err(Error::Run(format!(
                    "{} holds a {} run made by a different config (compare its config.toml with yours); delete it to redo the run, or choose another run.out_dir",
                    dir.display(),
                    if finished { "finished" } else { "partial" }
                )));
            }
            if finished && options.skip_finished {
                return Ok(None);
            }
            if !options.resume {
                return Err(Error::Run(format!(
                    "{} already holds a {} run; pass --resume to continue it, or choose another run.out_dir",
                    dir.display(),
                    if finished { "finished" } else { "partial" }
                )));
            }
        } else {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            write_atomic(&config_path, identity.as_bytes())?;
            write_atomic(&folder.seed(), format!("{seed}\n").as_bytes())?;
            write_atomic(&folder.git_rev(), format!("{git_rev}\n").as_bytes())?;
        }
        Ok(Some(Self {
            folder: folder.clone(),
        }))
    }

    /// Whether `folder`'s `metrics.jsonl` ends with a [`Done`] record.
    pub fn is_finished(folder: &RunFolder) -> Result<bool> {
        let metrics: Vec<Metric> = read_lines(&folder.metrics())?;
        Ok(matches!(metrics.last(), Some(Metric::Done(_))))
    }

    /// The folder.
    pub fn folder(&self) -> &RunFolder {
        &self.folder
    }

    /// The folder's path.
    pub fn path(&self) -> &Path {
        self.folder.path()
    }

    /// Appends one record to `metrics.jsonl`.
    pub fn metric(&self, record: &Metric) -> Result<()> {
        append(&self.folder.metrics(), record)
    }

    /// Ends the run: appends its [`Done`] record.
    pub fn finish(&self, done: Done) -> Result<()> {
        self.metric(&Metric::Done(done))
    }

    /// Appends one record to `timing.jsonl` (wall-clock figures, not deterministic).
    pub fn timing(&self, record: &Timing) -> Result<()> {
        append(&self.folder.timing(), record)
    }

    /// The records of `metrics.jsonl`.
    pub fn metrics(&self) -> Result<Vec<Metric>> {
        read_lines(&self.folder.metrics())
    }

    /// Number of lines in `metrics.jsonl`.
    pub fn metric_lines(&self) -> Result<usize> {
        let path = self.folder.metrics();
        match std::fs::read_to_string(&path) {
            Ok(t) => Ok(t.lines().count()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Keeps the first `lines` lines of `metrics.jsonl` (what the checkpoint had seen).
    pub fn truncate_metrics(&self, lines: usize) -> Result<()> {
        let path = self.folder.metrics();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let kept: String = text.lines().take(lines).map(|l| format!("{l}\n")).collect();
        write_atomic(&path, kept.as_bytes())
    }

    /// Writes the manifest of every data source into the run folder's `data/`, so the run
    /// records exactly which files (and bytes, by SHA-256) it saw.
    pub fn record_data(&self, manifests: &[ponder_data::Manifest]) -> Result<()> {
        let dir = self.folder.data();
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
            let path = dir.join(format!("{safe}.manifest.json"));
            m.save(&path)
                .map_err(|e| Error::Run(format!("{}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Writes a checkpoint: named tensors and its state, into the live checkpoint folder
    /// atomically (a new folder is written, then swapped in by renames). Tensors on any device
    /// are copied to the CPU; the file does not record where they came from, so it loads on any
    /// device.
    pub fn save_checkpoint(
        &self,
        tensors: &BTreeMap<String, Tensor>,
        state: &CheckpointState,
    ) -> Result<()> {
        let [live, tmp, old] = self.folder.checkpoints();
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        ponder_nn::save_safetensors(&RunFolder::checkpoint_tensors(&tmp), tensors)?;
        write_json(&RunFolder::checkpoint_state(&tmp), state)?;
        let _ = std::fs::remove_dir_all(&old);
        if live.exists() {
            std::fs::rename(&live, &old).map_err(io(&live))?;
        }
        std::fs::rename(&tmp, &live).map_err(io(&live))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// The latest complete checkpoint, if any (a crash between the two renames leaves the old
    /// one, which is used then), with its tensors on `device`.
    pub fn load_checkpoint(
        &self,
        device: &Device,
    ) -> Result<Option<(BTreeMap<String, Tensor>, CheckpointState)>> {
        let [live, _, old] = self.folder.checkpoints();
        for dir in [live, old] {
            let state_path = RunFolder::checkpoint_state(&dir);
            if !state_path.is_file() {
                continue;
            }
            let state: CheckpointState = read_json(&state_path)?;
            let tensors = candle::safetensors::load(RunFolder::checkpoint_tensors(&dir), device)?;
            return Ok(Some((tensors.into_iter().collect(), state)));
        }
        Ok(None)
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
        let state = CheckpointState {
            step,
            adam_steps: opt.steps(),
            metric_lines: self.metric_lines()?,
            lagrangian: None,
            obs_norm: None,
        };
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
                    self.path().display()
                ))
            })?;
            var.set(t)?;
        }
        let opt_state: BTreeMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("optim.").map(|k| (k.to_string(), v.clone())))
            .collect();
        opt.load_state(&opt_state, state.adam_steps)?;
        self.truncate_metrics(state.metric_lines)?;
        tracing::info!(step = state.step, "resumed from checkpoint");
        Ok(state.step)
    }
}

/// Appends `record` as one JSON line; a record holding a non-finite number (which JSON would
/// write as `null` and no reader could read back) is refused, naming the field.
fn append(path: &Path, record: &impl serde::Serialize) -> Result<()> {
    let value = serde_json::to_value(record).expect("records serialize");
    if let Some(fields) = value.as_object() {
        if let Some((key, _)) = fields.iter().find(|(_, v)| v.is_null()) {
            return Err(Error::Run(format!(
                "{}: the record's `{key}` is not a finite number ({value})",
                path.display()
            )));
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    writeln!(f, "{value}").map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_resume_finish_and_skip() {
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::new(dir.path().join("run"));
        let fresh = OpenOptions::default();
        let run = RunDir::open(&folder, "a = 1\n", 7, "rev", fresh)
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read_to_string(folder.seed()).unwrap(), "7\n");
        // A second open without --resume is refused; another identity is refused even with it.
        let e = RunDir::open(&folder, "a = 1\n", 7, "rev", fresh)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("partial run; pass --resume"), "{e}");
        let resume = OpenOptions {
            resume: true,
            skip_finished: true,
        };
        let e = RunDir::open(&folder, "a = 2\n", 7, "rev", resume)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("different config"), "{e}");
        assert!(RunDir::open(&folder, "a = 1\n", 7, "rev", resume)
            .unwrap()
            .is_some());
        run.finish(Done::empty()).unwrap();
        assert!(RunDir::is_finished(&folder).unwrap());
        assert!(RunDir::open(&folder, "a = 1\n", 7, "rev", resume)
            .unwrap()
            .is_none());
        let e = RunDir::open(&folder, "a = 2\n", 7, "rev", resume)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("finished run made by a different config"), "{e}");
    }

    #[test]
    fn a_record_with_a_non_finite_number_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::new(dir.path().join("run"));
        let run = RunDir::open(&folder, "a = 1\n", 7, "rev", OpenOptions::default())
            .unwrap()
            .unwrap();
        let bad = Metric::FastValidation(crate::records::FastValidation {
            step: 1,
            val_skip_loss: 4.0,
            val_update_loss: f64::INFINITY,
        });
        let e = run.metric(&bad).unwrap_err().to_string();
        assert!(
            e.contains("`val_update_loss` is not a finite number"),
            "{e}"
        );
        assert_eq!(run.metric_lines().unwrap(), 0);
    }

    #[test]
    fn a_corrupt_metrics_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let folder = RunFolder::new(dir.path());
        std::fs::write(folder.metrics(), "{\"record\":\"done\"}\nnot json\n").unwrap();
        let e = RunDir::is_finished(&folder).unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl: line 2"), "{e}");
    }
}
