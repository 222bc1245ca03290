//! Sliding windows for scoring a long token stream with a model of bounded context: every
//! target token is scored exactly once, with as much left context as the window allows
//! (the strided evaluation of Hugging Face's perplexity guide).

use crate::error::{Error, Result};

/// One window: the model reads `tokens[start..end − 1]` and predicts `tokens[start + 1..end]`;
/// only predictions of targets at indices `score_from..end` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First input token.
    pub start: usize,
    /// One past the last target token.
    pub end: usize,
    /// First target index that is scored in this window.
    pub score_from: usize,
}

impl Window {
    /// Number of scored predictions.
    pub fn n_scored(&self) -> usize {
        self.end - self.score_from
    }
}

/// Windows over `n_tokens` tokens with at most `context` input tokens each, starting every
/// `stride` tokens. Each target `1..n_tokens` is scored once. Fewer than 2 tokens give no window.
pub fn score_windows(n_tokens: usize, context: usize, stride: usize) -> Result<Vec<Window>> {
    if context == 0 || stride == 0 || stride > context {
        return Err(Error::Windows(format!(
            "need 0 < stride <= context, got stride {stride} and context {context}"
        )));
    }
    let mut out = Vec::new();
    let mut scored_to = 1; // next target index to score
    let mut start = 0;
    while scored_to < n_tokens {
        let end = (start + context + 1).min(n_tokens);
        out.push(Window {
            start,
            end,
            score_from: scored_to.max(start + 1),
        });
        scored_to = end;
        start += stride;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_scored_once() {
        for (n, ctx, stride) in [
            (2, 4, 4),
            (10, 4, 2),
            (10, 4, 4),
            (1000, 128, 64),
            (5, 8, 3),
        ] {
            let w = score_windows(n, ctx, stride).unwrap();
            let mut seen = vec![0; n];
            for win in &w {
                assert!(win.end - win.start <= ctx + 1);
                for s in &mut seen[win.score_from..win.end] {
                    *s += 1;
                }
            }
            assert_eq!(seen[0], 0);
            assert!(
                seen[1..].iter().all(|&c| c == 1),
                "{n} {ctx} {stride}: {seen:?}"
            );
        }
    }

    #[test]
    fn strided_windows_keep_context() {
        let w = score_windows(10, 4, 2).unwrap();
        assert_eq!(
            w[0],
            Window {
                start: 0,
                end: 5,
                score_from: 1
            }
        );
        assert_eq!(
            w[1],
            Window {
                start: 2,
                end: 7,
                score_from: 5
            }
        );
        assert_eq!(
            w[2],
            Window {
                start: 4,
                end: 9,
                score_from: 7
            }
        );
        assert_eq!(
            w[3],
            Window {
                start: 6,
                end: 10,
                score_from: 9
            }
        );
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn short_inputs_and_bad_parameters() {
        assert!(score_windows(1, 4, 4).unwrap().is_empty());
        assert!(score_windows(0, 4, 4).unwrap().is_empty());
        assert!(score_windows(10, 4, 5).is_err());
        assert!(score_windows(10, 0, 0).is_err());
    }
}
