//! The paper's reported numbers (arXiv 2601.00894 v1, Tables 1–5 and 7–9), shown beside ours in
//! the report of the GPT-2 presets. Source: `docs/original.md` §11.1–§11.3; cross-entropy in
//! nats, ρ = 0.5, global top-50% oracle.

/// One size's in-distribution (Python) row of Table 1 with Tables 3, 5, 8 and 9.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperPython {
    /// SKIP loss.
    pub skip: f64,
    /// Oracle loss.
    pub oracle: f64,
    /// Ours (reconstruction gating) loss.
    pub ours: f64,
    /// Oracle Recovery.
    pub recovery: f64,
    /// Realized update rate.
    pub rate: f64,
    /// Random loss (Table 8).
    pub random: f64,
    /// UPDATE_1 loss (Table 9).
    pub update_1: f64,
    /// Pearson r of the signal with the advantage (Table 3).
    pub pearson: f64,
    /// Decision accuracy of Random and Ours (Table 5).
    pub accuracy: (f64, f64),
}

/// One size's out-of-distribution row (Tables 2, 7, 9): SKIP, Random, Ours, Oracle, UPDATE_1;
/// Random is missing for Medium.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperOod {
    /// The language as the report names it.
    pub language: &'static str,
    /// SKIP loss.
    pub skip: f64,
    /// Random loss, where reported.
    pub random: Option<f64>,
    /// Ours loss.
    pub ours: f64,
    /// Oracle loss.
    pub oracle: f64,
    /// UPDATE_1 loss.
    pub update_1: f64,
}

/// The paper's numbers for one GPT-2 size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaperSize {
    /// `small`, `medium`, `large` or `xl`.
    pub size: &'static str,
    /// Python, in distribution.
    pub python: PaperPython,
    /// JavaScript, Java, Go.
    pub ood: [PaperOod; 3],
}

const fn ood(
    language: &'static str,
    skip: f64,
    random: Option<f64>,
    ours: f64,
    oracle: f64,
    update_1: f64,
) -> PaperOod {
    PaperOod {
        language,
        skip,
        random,
        ours,
        oracle,
        update_1,
    }
}

#[allow(clippy::too_many_arguments)]
const fn python(
    skip: f64,
    oracle: f64,
    ours: f64,
    recovery: f64,
    random: f64,
    update_1: f64,
    pearson: f64,
    accuracy: (f64, f64),
) -> PaperPython {
    PaperPython {
        skip,
        oracle,
        ours,
        recovery,
        rate: 0.502,
        random,
        update_1,
        pearson,
        accuracy,
    }
}

/// All four sizes.
pub const PAPER: [PaperSize; 4] = [
    PaperSize {
        size: "small",
        python: python(
            2.324,
            1.935,
            1.977,
            0.892,
            2.017,
            1.716,
            0.84,
            (0.520, 0.591),
        ),
        ood: [
            ood("javascript", 3.164, Some(2.46), 2.192, 1.985, 1.829),
            ood("java", 3.148, Some(2.48), 2.136, 1.981, 1.780),
            ood("go", 6.130, Some(4.14), 4.012, 3.623, 2.367),
        ],
    },
    PaperSize {
        size: "medium",
        python: python(
            1.909,
            1.653,
            1.697,
            0.828,
            1.714,
            1.525,
            0.43,
            (0.522, 0.575),
        ),
        ood: [
            ood("javascript", 2.458, None, 1.940, 1.682, 1.597),
            ood("java", 2.420, None, 1.790, 1.633, 1.506),
            ood("go", 3.902, None, 2.860, 2.617, 1.981),
        ],
    },
    PaperSize {
        size: "large",
        python: python(
            2.005,
            1.580,
            1.656,
            0.821,
            1.698,
            1.403,
            0.62,
            (0.518, 0.592),
        ),
        ood: [
            ood("javascript", 3.169, Some(2.27), 2.003, 1.604, 1.458),
            ood("java", 3.570, Some(2.50), 2.173, 1.675, 1.417),
            ood("go", 7.077, Some(4.49), 4.362, 3.848, 1.999),
        ],
    },
    PaperSize {
        size: "xl",
        python: python(
            1.875,
            1.518,
            1.576,
            0.838,
            1.625,
            1.384,
            0.61,
            (0.528, 0.596),
        ),
        ood: [
            ood("javascript", 2.852, Some(2.12), 1.840, 1.574, 1.459),
            ood("java", 3.213, Some(2.33), 1.948, 1.643, 1.422),
            ood("go", 6.520, Some(4.25), 4.155, 3.703, 2.081),
        ],
    },
];

/// The paper's numbers for `size`, if it is one of the four.
pub fn paper(size: &str) -> Option<&'static PaperSize> {
    PAPER.iter().find(|p| p.size == size)
}
