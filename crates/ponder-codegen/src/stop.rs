//! Where a completion ends: the stop sequences of the original's GPT-2 runner (and of Codex's
//! HumanEval evaluation): a new top-level `def`, `class`, `if __name__` or comment, or three
//! newlines. The completion is cut before the first of them.

/// The stop sequences, in no particular order.
pub const STOP_SEQUENCES: [&str; 5] = ["\ndef ", "\nclass ", "\nif __name__", "\n#", "\n\n\n"];

/// The byte length of `completion` before its first stop sequence, if it holds one.
pub fn stop_at(completion: &str) -> Option<usize> {
    STOP_SEQUENCES
        .iter()
        .filter_map(|s| completion.find(s))
        .min()
}

/// `completion` cut before its first stop sequence.
pub fn truncate_at_stop(completion: &str) -> &str {
    &completion[..stop_at(completion).unwrap_or(completion.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_end_at_the_first_stop_sequence() {
        let c = "    return a + b\n\n\ndef other():\n    pass\n";
        assert_eq!(truncate_at_stop(c), "    return a + b");
        assert_eq!(truncate_at_stop("    x = 1\n# note\n"), "    x = 1");
        assert_eq!(truncate_at_stop("    y = 2\nclass A:\n"), "    y = 2");
        assert_eq!(
            truncate_at_stop("    z\nif __name__ == '__main__':"),
            "    z"
        );
        assert_eq!(stop_at("    return 1\n"), None);
        // An indented def or comment is part of the function.
        assert_eq!(
            stop_at("    def inner():\n        # c\n        pass\n"),
            None
        );
    }
}
