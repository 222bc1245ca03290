//! `ponder generate`, and the decoder `ponder codegen` shares with it: the backbone, the
//! optional fast layer and gate, the tokenizer and the sampling settings, turning a prompt's
//! text into a completion cut at the code stop sequences.

#![allow(clippy::print_stdout)]

use std::cell::RefCell;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ponder_data::Tokenizer;
use ponder_eval::learned::{LearnedDecider, LearnedGate};
use ponder_experiment::RunFolder;
use ponder_gate::{Budget, Decision, GateConfig, Method};
use ponder_gpt2::Gpt2;
use ponder_model::decode::{
    generate, BackboneStream, ChunkDecider, DecodeStream, FastStream, Generated, Sampler, Sampling,
    SignalDecider, StopReason, StreamReport,
};
use ponder_model::PonderLm;

use crate::args::{DecodeArgs, GenerateArgs, Global};

/// The gates' budget ρ when neither `--budget` nor a config gives one.
pub const DEFAULT_BUDGET: f64 = 0.5;

/// A model ready to complete prompts.
pub struct Decoder {
    backbone: Gpt2,
    fast: Option<(PonderLm, usize)>,
    /// The fast layer's folder, where the learned gate trained on it is looked for.
    fast_dir: Option<std::path::PathBuf>,
    /// The learned gate `ppo` runs, once loaded (shared by every completion: its budget
    /// correction carries over them).
    learned: Option<RefCell<LearnedGate>>,
    tokenizer: Tokenizer,
    sampling: Sampling,
    budget: Budget,
    /// The controller an experiment chose on its validation split, which `ours_lh` runs.
    selected: Option<GateConfig>,
    max_new_tokens: usize,
    cached: bool,
    /// What the settings are, in words.
    pub describe: String,
}

/// One completion.
pub struct Completion {
    /// The completion's text, cut at the first stop sequence when asked.
    pub text: String,
    /// The generated tokens (before the cut).
    pub generated: Generated,
    /// What the stream did.
    pub report: StreamReport,
    /// Wall-clock seconds of the decoding.
    pub seconds: f64,
}

impl Decoder {
    /// Loads the model (and fast layer) and checks every setting before any decoding.
    pub fn new(global: &Global, a: &DecodeArgs) -> Result<Self> {
        let Some(spec) = &a.model else {
            bail!("--model is required to generate (the backbone: tiny-random, random:PRESET, a folder or a Hub id)");
        };
        let backbone = crate::resolve::model(global, spec, a.seed)?.model;
        let tokenizer = crate::resolve::tokenizer(global, a.tokenizer.as_deref(), spec, &backbone)?;
        let sampling = match a.temperature {
            None => Sampling::Greedy,
            Some(temperature) => Sampling::Sample {
                temperature,
                top_p: a.top_p,
                seed: a.sample_seed,
            },
        };
        Sampler::new(sampling)?;
        let rho = a.budget.unwrap_or(DEFAULT_BUDGET);
        let budget = Budget::new(rho).with_context(|| format!("--budget {rho}"))?;
        let fast = match &a.fast {
            None => None,
            Some(dir) => {
                let lm = crate::resolve::fast_layer(dir, &backbone)?;
                let chunk_len = match a.chunk_len {
                    Some(n) => n,
                    None => chunk_len_beside(dir)?,
                };
                Some((lm, chunk_len))
            }
        };
        let describe = match &fast {
            None => format!(
                "{spec}, backbone alone ({}), {sampling:?}",
                if a.no_cache { "no kv cache" } else { "kv cache" }
            ),
            Some((_, chunk_len)) => format!(
                "{spec} with the fast layer {}, budget {}, chunks of {chunk_len} tokens, {sampling:?}",
                a.fast.as_ref().expect("fast").display(),
                budget.rho()
            ),
        };
        Ok(Self {
            backbone,
            fast,
            fast_dir: a.fast.clone(),
            learned: None,
            tokenizer,
            sampling,
            budget,
            selected: None,
            max_new_tokens: a.max_new_tokens,
            cached: !a.no_cache,
            describe,
        })
    }

    /// The fast layer and its chunk length, if decoding with one.
    pub fn fast(&self) -> Option<(&PonderLm, usize)> {
        self.fast.as_ref().map(|(lm, n)| (lm, *n))
    }

    /// The gates' budget.
    pub fn budget(&self) -> Budget {
        self.budget
    }

    /// Lets `ours_lh` run `selected`, the controller an experiment chose on validation.
    pub fn with_selected(mut self, selected: Option<GateConfig>) -> Self {
        self.selected = selected;
        self
    }

    /// The controller `ours_lh` runs, if one was given.
    pub fn selected(&self) -> Option<&GateConfig> {
        self.selected.as_ref()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The learned gate, taken out (for scoring, which runs it itself).
    pub fn take_learned(&mut self) -> Option<LearnedGate> {
        self.learned.take().map(RefCell::into_inner)
    }

    /// Lets `ppo` run `gate` (else it is loaded from beside the fast layer when asked for).
    pub fn with_learned(mut self, gate: Option<LearnedGate>) -> Self {
        self.learned = gate.map(RefCell::new);
        self
    }

    /// Parses a method and checks that it can decode with this model: `none` (the backbone
    /// alone), or, with a fast layer, an online gate or the learned gate `ppo` (loaded from
    /// `<fast run>/policy/learned`, where `ponder train gate` writes it, unless given).
    pub fn method(&mut self, name: &str) -> Result<Method> {
        let method: Method = name.parse().with_context(|| format!("method {name}"))?;
        match (&method, &self.fast) {
            (Method::Backbone, _) => {}
            (_, None) => {
                bail!("method {name} needs a fast layer (--fast); without one only `none` decodes")
            }
            (Method::Learned, Some((lm, _))) => {
                if self.learned.is_none() {
                    let fast_dir = self.fast_dir.as_ref().expect("a fast layer has its folder");
                    let dir = fast_dir
                        .parent()
                        .map(|run| RunFolder::new(run).policy_run().learned_policy())
                        .context("the fast layer's folder has no parent run folder")?;
                    let gate = LearnedGate::load(&dir, lm.backbone_model().device())
                        .with_context(|| format!("method ppo: loading the learned gate from {} (train it with `ponder train gate`)", dir.display()))?;
                    self.learned = Some(RefCell::new(gate));
                }
            }
            (_, Some(_)) => {
                // Any horizon will do: this only checks that the method can gate.
                online_gate(&method, self.selected.as_ref(), self.budget, 1)?;
            }
        }
        Ok(method)
    }

    /// Completes `prompt` with `method` (from [`Decoder::method`]), with sampling's draws
    /// seeded by `seed_offset` more than asked (one stream of draws per sample); cut at the
    /// stop sequences when `cut`.
    pub fn complete(
        &self,
        prompt: &str,
        method: &Method,
        seed_offset: u64,
        cut: bool,
    ) -> Result<Completion> {
        let ids = self.tokenizer.encode(prompt)?;
        if ids.is_empty() {
            bail!("the prompt has no tokens");
        }
        let sampling = match self.sampling {
            Sampling::Sample {
                temperature,
                top_p,
                seed,
            } => Sampling::Sample {
                temperature,
                top_p,
                seed: seed.wrapping_add(seed_offset),
            },
            greedy => greedy,
        };
        let mut sampler = Sampler::new(sampling)?;
        let eos = Some(self.tokenizer.eot_id());
        let start = Instant::now();
        let tokenizer = &self.tokenizer;
        let rule = |new: &[u32]| {
            cut && tokenizer
                .decode(new)
                .is_ok_and(|text| ponder_codegen::stop_at(&text).is_some())
        };
        let mut stream: Box<dyn DecodeStream + '_> = match (&self.fast, method) {
            (None, _) | (_, Method::Backbone) => {
                Box::new(BackboneStream::new(&self.backbone, self.cached))
            }
            (Some((lm, chunk_len)), _) => {
                // The most chunks the sample can complete, each decided on after it ends: the
                // horizon of a paced gate (a sample that stops early spends less).
                let horizon = (ids.len() + self.max_new_tokens) / chunk_len;
                let decider: Box<dyn ChunkDecider + '_> = match (method, &self.learned) {
                    (Method::Learned, Some(gate)) => Box::new(LearnedDecider::new(
                        gate,
                        lm.backbone_model().config().vocab_size,
                        seed_offset,
                    )?),
                    _ => Box::new(SignalDecider(online_gate(
                        method,
                        self.selected.as_ref(),
                        self.budget,
                        horizon.max(1),
                    )?)),
                };
                Box::new(FastStream::new(lm, *chunk_len, decider)?)
            }
        };
        let generated = generate(
            stream.as_mut(),
            &ids,
            &mut sampler,
            self.max_new_tokens,
            eos,
            rule,
        )?;
        let report = stream.report();
        let seconds = start.elapsed().as_secs_f64();
        let full = self.tokenizer.decode(&generated.ids)?;
        let text = if cut {
            ponder_codegen::truncate_at_stop(&full).to_string()
        } else {
            full
        };
        Ok(Completion {
            text,
            generated,
            report,
            seconds,
        })
    }
}

/// A fresh online gate for `method` at `budget` (`ours_lh` runs `selected`) over at most
/// `horizon` decisions; an error naming the methods that cannot gate a generation.
fn online_gate(
    method: &Method,
    selected: Option<&GateConfig>,
    budget: Budget,
    horizon: usize,
) -> Result<Box<dyn ponder_gate::Gate + Send>> {
    let config = method.resolve(selected).with_context(|| {
        format!(
            "method {}: generation runs the training-free online gates (skip, update_k, random, ours, pid, quantile controllers, and ours_lh with --config)",
            method.name()
        )
    })?;
    config.online_gate(budget, Some(horizon))?.with_context(|| {
        format!(
            "--gate {}: an offline reference, it cannot decide online",
            method.name()
        )
    })
}

/// The `fast.chunk_len` of the config.toml in the run folder that holds `fast_layer`.
fn chunk_len_beside(fast_layer: &std::path::Path) -> Result<usize> {
    let run = fast_layer
        .parent()
        .map(ponder_experiment::RunFolder::new)
        .context("the fast layer's folder has no parent run folder")?;
    let path = run.config();
    let config = ponder_experiment::ExperimentConfig::load(&path, &[]).with_context(|| {
        format!(
            "reading the chunk length from {} (or pass --chunk-len)",
            path.display()
        )
    })?;
    Ok(config.fast()?.chunk_len)
}

/// Runs `ponder generate`.
pub fn run(global: &Global, a: &GenerateArgs) -> Result<()> {
    let prompt = std::fs::read_to_string(&a.prompt)
        .with_context(|| format!("reading the prompt {}", a.prompt.display()))?;
    let mut decoder = Decoder::new(global, &a.decode)?;
    let method = decoder.method(if a.decode.fast.is_some() {
        &a.gate
    } else {
        ponder_gate::BACKBONE
    })?;
    eprintln!("{}, method {}", decoder.describe, method.name());
    let c = decoder.complete(&prompt, &method, 0, !a.no_stop)?;
    println!("{}", c.text);
    let n = c.generated.ids.len();
    let stop = match c.generated.stop {
        StopReason::Eos => "end of text",
        StopReason::Rule => "a stop sequence",
        StopReason::Length => "--max-new-tokens",
    };
    eprintln!(
        "{n} tokens in {:.2} s ({:.1} tokens/s, prompt included in the time), stopped at {stop}",
        c.seconds,
        n as f64 / c.seconds.max(1e-9)
    );
    if c.report.slides > 0 {
        eprintln!(
            "the backbone's window slid {} times (context full)",
            c.report.slides
        );
    }
    if !c.report.decisions.is_empty() {
        let names: Vec<String> = c.report.decisions.iter().map(decision_name).collect();
        eprintln!("{} chunks decided: {}", names.len(), names.join(" "));
    }
    Ok(())
}

/// SKIP or UPDATE_k.
pub fn decision_name(d: &Decision) -> String {
    match d {
        Decision::Skip => "SKIP".into(),
        Decision::Update(k) => format!("UPDATE_{k}"),
    }
}
