//! Tests of the run-folder layout.

use super::*;

#[test]
fn names_follow_the_layout() {
    let c = ExperimentConfig::from_toml(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/tiny.toml"
        ))
        .unwrap(),
        &["fast.k=2".into(), "run.out_dir=runs/x".into()],
    )
    .unwrap();
    let fast = Layout::fast_of(&c).unwrap();
    assert_eq!(fast.path(), Path::new("runs/x/fast-ttt_linear-k2"));
    let eval = fast.eval(
        "python",
        Ablation {
            shuffle: true,
            causal_k: Some(-1),
        },
    );
    assert_eq!(eval.name(), "python-shuffled-diagonal-1");
    assert!(Ablation::is_ablation_name(&eval.name()));
    let validation = fast.validation_eval("python", Ablation::default());
    assert_eq!(
        validation.selection(),
        Path::new("runs/x/fast-ttt_linear-k2/validation/python/selection.json")
    );
    assert!(!Ablation::is_ablation_name("python"));
    assert_eq!(
        fast.fast_layer(),
        Path::new("runs/x/fast-ttt_linear-k2/fast_layer")
    );
}
