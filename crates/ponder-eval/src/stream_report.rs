//! The report's stream-mode section (`docs/design/stream.md`): every method's loss and cost per
//! chunk with the fast weights carried across each file, for the reported fast layer and, where
//! it was trained, its stream-trained sibling; UPDATE_1 carried against UPDATE_1 reset; the loss
//! at each chunk index of a file; loss against realized cost for every method; the gates on the
//! other languages' streams where they were compared; and the learned gate's part
//! ([`crate::policy_report`]). Every number is read from the stream evaluations'
//! `summary.json` and the policy runs.

use std::fmt::Write;
use std::path::Path;

use ponder_experiment::run_dir::{read_json, write_atomic};
use ponder_experiment::{Ablation, RunFolder};

use crate::error::Result;
use crate::plot::{Chart, Mark, Series};
use crate::report::ReportSpec;
use crate::stream_compare::RESET_UPDATE_1;
use crate::stream_summary::{StreamMethodSummary, StreamSummary};

/// The stream-mode summary of `fast` on `language`, if that evaluation finished.
fn read_stream(fast: &RunFolder, language: &str) -> Result<Option<StreamSummary>> {
    let folder = fast.stream_eval(language, Ablation::default());
    if !folder.summary().is_file() {
        return Ok(None);
    }
    Ok(Some(read_json(&folder.summary())?))
}

fn find<'a>(s: &'a StreamSummary, method: &str) -> Option<&'a StreamMethodSummary> {
    s.methods.iter().find(|m| m.method == method)
}

/// Appends the section (nothing when no stream-mode evaluation of the reported layer finished)
/// and writes its plots into `plot_dir`.
pub fn stream_section(s: &mut String, spec: &ReportSpec<'_>, plot_dir: &Path) -> Result<()> {
    let Some(reset) = read_stream(spec.fast, spec.language)? else {
        return Ok(());
    };
    let stream = match spec.stream_trained {
        Some(f) => read_stream(f, spec.language)?,
        None => None,
    };
    s.push_str("## Stream mode: fast weights carried across each file\n\n");
    let _ = writeln!(
        s,
        "Each held-out file is a stream of chunks whose fast weights carry from chunk to chunk \
         (docs/design/stream.md): {} streams, budget a mean cost of {:.2} per chunk (SKIP 1, \
         UPDATE_k 1 + 2k). Every method runs its own pass; intervals resample whole streams. \
         The reported layer was trained in {} mode{}.\n",
        reset.streams,
        reset.cost_budget,
        reset.trained_in.name(),
        if stream.is_some() {
            "; the right-hand columns are the same layer trained in stream mode (`fast.mode = \"stream\"`), \
             for as many steps on windows of `fast.chunks_per_window` chunks, so on that many times \
             the tokens"
        } else {
            ""
        }
    );
    let sub = reset.greedy.is_some();
    s.push_str("| method | loss (reset-trained) | cost | actions |");
    if sub {
        s.push_str(" loss, cost on greedy_oracle's streams |");
    }
    if stream.is_some() {
        s.push_str(" loss (stream-trained) | cost |");
    }
    s.push_str("\n|---|---|---|---|");
    if sub {
        s.push_str("---|");
    }
    if stream.is_some() {
        s.push_str("---|---|");
    }
    s.push('\n');
    for m in &reset.methods {
        let actions: Vec<String> = m.actions.iter().map(|(a, n)| format!("{a} {n}")).collect();
        let _ = write!(
            s,
            "| {} | {:.4} [{:.4}, {:.4}] | {:.3} | {} |",
            m.method,
            m.loss.point,
            m.loss.lo,
            m.loss.hi,
            m.cost.point,
            actions.join(", ")
        );
        if sub {
            match m.on_greedy_streams {
                Some((l, c)) => {
                    let _ = write!(s, " {l:.4}, {c:.3} |");
                }
                None => s.push_str(" – |"),
            }
        }
        if let Some(st) = &stream {
            match find(st, &m.method) {
                Some(o) => {
                    let _ = write!(
                        s,
                        " {:.4} [{:.4}, {:.4}] | {:.3} |",
                        o.loss.point, o.loss.lo, o.loss.hi, o.cost.point
                    );
                }
                None => s.push_str(" – | – |"),
            }
        }
        s.push('\n');
    }
    s.push('\n');
    for (label, summary) in [
        ("reset-trained", Some(&reset)),
        ("stream-trained", stream.as_ref()),
    ] {
        let Some(summary) = summary else { continue };
        if let (Some(carried), Some(fresh)) =
            (find(summary, "update_1"), find(summary, RESET_UPDATE_1))
        {
            let _ = writeln!(
                s,
                "- {label}: UPDATE_1 with the state carried {:.4}, from the initial state at every \
                 chunk {:.4} (carried minus reset {:+.4}).",
                carried.loss.point,
                fresh.loss.point,
                carried.loss.point - fresh.loss.point
            );
        }
    }
    if let Some(g) = &reset.greedy {
        let _ = writeln!(
            s,
            "- greedy_oracle (sees the labels; a reference, not an upper bound) ran on the first {} \
             streams only, with λ = {:.6}: compare it in the column of those streams.",
            g.streams, g.lambda
        );
    }
    s.push('\n');
    other_languages(s, spec)?;
    crate::policy_report::learned_section(s, spec.fast, "reset-trained", &reset, plot_dir)?;
    if let (Some(f), Some(st)) = (spec.stream_trained, &stream) {
        crate::policy_report::learned_section(s, f, "stream-trained", st, plot_dir)?;
    }
    for (file, chart) in [
        ("stream-loss-by-chunk.svg", by_chunk_chart(&reset)),
        (
            "stream-cost-loss.svg",
            pareto_chart(&reset, stream.as_ref()),
        ),
    ] {
        write_atomic(&plot_dir.join(file), chart.to_svg().as_bytes())?;
        let _ = writeln!(s, "![{}](plots/{file})\n", chart.title);
    }
    Ok(())
}

/// The methods that decide at the budget on the other languages' streams, where stream-mode
/// comparisons of them finished: each one's loss and cost, per language and trained layer, and
/// the learned gate's paired differences.
fn other_languages(s: &mut String, spec: &ReportSpec<'_>) -> Result<()> {
    const SHOWN: [&str; 5] = [
        ponder_gate::BACKBONE,
        "random",
        "ours",
        ponder_gate::SELECTED,
        ponder_gate::LEARNED,
    ];
    let mut rows = Vec::new();
    for language in ponder_data::Language::ALL.map(|l| l.name()) {
        if language == spec.language {
            continue;
        }
        for (label, fast) in [
            ("reset-trained", Some(spec.fast)),
            ("stream-trained", spec.stream_trained),
        ] {
            if let Some(summary) = fast
                .map(|f| read_stream(f, language))
                .transpose()?
                .flatten()
            {
                rows.push((language, label, summary));
            }
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    s.push_str(
        "Other languages, through the same tokenizer and fast layers (loss at mean cost per \
         chunk; the last columns are the learned gate's paired differences, below zero it is \
         better):\n\n| language | layer | streams |",
    );
    for m in SHOWN {
        let _ = write!(s, " {m} |");
    }
    let (learned, selected) = (ponder_gate::LEARNED, ponder_gate::SELECTED);
    let _ = write!(
        s,
        " {learned} − {selected} | {learned} − random |\n|---|---|---|"
    );
    s.push_str(&"---|".repeat(SHOWN.len() + 2));
    s.push('\n');
    for (language, label, summary) in &rows {
        let _ = write!(s, "| {language} | {label} | {} |", summary.streams);
        for m in SHOWN {
            match find(summary, m) {
                Some(x) => {
                    let _ = write!(s, " {:.4} @ {:.3} |", x.loss.point, x.cost.point);
                }
                None => s.push_str(" – |"),
            }
        }
        for b in [ponder_gate::SELECTED, "random"] {
            match summary
                .differences
                .iter()
                .find(|d| d.a == ponder_gate::LEARNED && d.b == b)
            {
                Some(d) => {
                    let i = &d.difference;
                    let _ = write!(s, " {:+.4} [{:+.4}, {:+.4}] |", i.point, i.lo, i.hi);
                }
                None => s.push_str(" – |"),
            }
        }
        s.push('\n');
    }
    s.push('\n');
    Ok(())
}

/// Mean loss at each chunk index of a file, per method (the greedy oracle, on its subsample, is
/// left out).
fn by_chunk_chart(summary: &StreamSummary) -> Chart {
    Chart {
        title: "stream mode: loss at each chunk of a file (reset-trained layer)".into(),
        x_label: "chunk index within the file".into(),
        y_label: "mean loss (nats/token)".into(),
        series: summary
            .methods
            .iter()
            .filter(|m| m.method != ponder_gate::GREEDY_ORACLE)
            .map(|m| Series {
                label: m.method.clone(),
                points: m
                    .loss_by_chunk
                    .iter()
                    .enumerate()
                    .map(|(c, &l)| (c as f64, l))
                    .collect(),
                mark: Mark::LinePoints,
            })
            .collect(),
    }
}

/// Loss against realized mean cost: one point per method, for each trained layer, the learned
/// gate in a series of its own.
fn pareto_chart(reset: &StreamSummary, stream: Option<&StreamSummary>) -> Chart {
    let points = |s: &StreamSummary, learned: bool| -> Vec<(f64, f64)> {
        s.methods
            .iter()
            .filter(|m| m.method != ponder_gate::GREEDY_ORACLE)
            .filter(|m| (m.method == ponder_gate::LEARNED) == learned)
            .map(|m| (m.cost.point, m.loss.point))
            .collect()
    };
    let mut series = Vec::new();
    for (label, summary) in [
        ("reset-trained layer", Some(reset)),
        ("stream-trained layer", stream),
    ] {
        let Some(summary) = summary else { continue };
        series.push(Series {
            label: label.into(),
            points: points(summary, false),
            mark: Mark::Points,
        });
        let learned = points(summary, true);
        if !learned.is_empty() {
            series.push(Series {
                label: format!("{} on the {label}", ponder_gate::LEARNED),
                points: learned,
                mark: Mark::Points,
            });
        }
    }
    Chart {
        title: "stream mode: loss against realized cost, every method".into(),
        x_label: "mean cost per chunk (SKIP 1, UPDATE_k 1 + 2k)".into(),
        y_label: "mean loss (nats/token)".into(),
        series,
    }
}
