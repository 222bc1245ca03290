//! Tests of sweep files: points, their overrides, and every refusal.

use super::*;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.toml")
}

/// A sweep of the tiny preset with `axes` (TOML `[[axes]]` tables) and `extra` top-level keys.
fn sweep(extra: &str, axes: &str) -> std::result::Result<SweepConfig, String> {
    let text = format!(
        "base = {:?}\nout_dir = \"runs/sweeps/t\"\nset = [\"eval.max_batches=8\"]\nshared = [\"backbone\"]\nphases = [\"fast\", \"eval-id\"]\n{extra}\n{axes}",
        tiny().display().to_string()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    SweepConfig::load(&path).map_err(|e| e.to_string())
}

const SEEDS_BUDGETS: &str =
    "[[axes]]\nkey = \"run.seed\"\nvalues = [0, 1]\n[[axes]]\nkey = \"eval.budget\"\nvalues = [0.25, 0.5, 0.75]\n";

#[test]
fn a_grid_varies_the_last_axis_fastest() {
    let s = sweep("combine = \"grid\"", SEEDS_BUDGETS).unwrap();
    let points = s.points();
    let names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "run.seed=0,eval.budget=0.25",
            "run.seed=0,eval.budget=0.5",
            "run.seed=0,eval.budget=0.75",
            "run.seed=1,eval.budget=0.25",
            "run.seed=1,eval.budget=0.5",
            "run.seed=1,eval.budget=0.75",
        ]
    );
    assert_eq!(
        points[4].overrides,
        [
            "eval.max_batches=8",
            "run.seed=1",
            "eval.budget=0.5",
            "run.out_dir=\"runs/sweeps/t/points/run.seed=1,eval.budget=0.5\"",
            "fast.backbone=\"runs/sweeps/t/shared/model\"",
        ]
    );
    assert_eq!(
        s.shared_overrides(),
        ["eval.max_batches=8", "run.out_dir=\"runs/sweeps/t/shared\""]
    );
    // Every point resolves to a config with its values.
    let configs = s.configs().unwrap();
    assert_eq!(configs[4].1.run.seed, 1);
    assert_eq!(configs[4].1.eval.as_ref().unwrap().budget, 0.5);
    assert_eq!(
        configs[4].1.fast.as_ref().unwrap().backbone,
        "runs/sweeps/t/shared/model"
    );
}

#[test]
fn zip_pairs_the_values_and_strings_name_folders_bare() {
    let axes = "[[axes]]\nkey = \"run.seed\"\nvalues = [3, 4]\n[[axes]]\nkey = \"fast.layer\"\nvalues = [\"ttt_linear\", \"ttt_mlp\"]\n";
    let s = sweep("combine = \"zip\"", axes).unwrap();
    let points = s.points();
    assert_eq!(points.len(), 2);
    assert_eq!(points[1].name, "run.seed=4,fast.layer=ttt_mlp");
    assert!(points[1]
        .overrides
        .contains(&"fast.layer=\"ttt_mlp\"".to_string()));
}

#[test]
fn bad_sweeps_are_refused_naming_the_key() {
    let cases = [
        ("combine = \"grid\"\naxes = []", "", "no [[axes]]"),
        (
            "combine = \"grid\"",
            "[[axes]]\nkey = \"run.seed\"\nvalues = []\n",
            "axis `run.seed` has no values",
        ),
        (
            "combine = \"grid\"",
            "[[axes]]\nkey = \"run.seed\"\nvalues = [1]\n[[axes]]\nkey = \"run.seed\"\nvalues = [2]\n",
            "two axes vary `run.seed`",
        ),
        (
            "combine = \"zip\"",
            SEEDS_BUDGETS,
            "combine = \"zip\" needs axes of one length",
        ),
        (
            "combine = \"grid\"",
            "[[axes]]\nkey = \"model.n_layer\"\nvalues = [2]\n",
            "axis `model.n_layer` changes the backbone",
        ),
        (
            "combine = \"grid\"\nbudget = 2",
            SEEDS_BUDGETS,
            "unknown field `budget`",
        ),
        ("combine = \"diagonal\"", SEEDS_BUDGETS, "unknown variant `diagonal`"),
        (
            "combine = \"grid\"",
            "[[axes]]\nkey = \"fast.backbone\"\nvalues = [\"a\"]\n",
            "axis `fast.backbone`: the sweep sets that key itself",
        ),
        (
            "combine = \"grid\"",
            "[[axes]]\nkey = \"run.out_dir\"\nvalues = [\"a\"]\n",
            "axis `run.out_dir`: the sweep sets that key itself",
        ),
        (
            "combine = \"grid\"",
            "[[axes]]\nkey = \"eval.methods\"\nvalues = [\"a,b\"]\n",
            "would name a folder with characters other than",
        ),
        (
            "combine = \"grid\"",
            "[[axes]]\nkey = \"fast.layer\"\nvalues = [\"a/b\", \"a_b\"]\n",
            "name the same folder",
        ),
    ];
    for (extra, axes, want) in cases {
        let e = sweep(extra, axes).unwrap_err();
        assert!(e.contains(want), "{want}: {e}");
        assert!(e.contains("s.toml"), "names the file: {e}");
    }
    let s = sweep("combine = \"grid\"", SEEDS_BUDGETS).unwrap();
    let owned = SweepConfig {
        set: vec!["run.out_dir=\"x\"".into()],
        ..s.clone()
    };
    assert!(owned
        .check()
        .unwrap_err()
        .contains("the sweep sets that key itself"));
    let shared = SweepConfig {
        shared: vec!["fast".into()],
        ..s.clone()
    };
    assert!(shared
        .check()
        .unwrap_err()
        .contains("only data, backbone can be shared"));
    // A key the config does not have: the point's config refuses it.
    let typo = SweepConfig {
        axes: vec![Axis {
            key: "eval.budjet".into(),
            values: vec![toml::Value::Float(0.5)],
        }],
        ..s
    };
    let e = typo.configs().unwrap_err().to_string();
    assert!(
        e.contains("sweep point eval.budjet=0.5") && e.contains("budjet"),
        "{e}"
    );
}

#[test]
fn a_sweep_folder_made_from_another_base_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.toml");
    std::fs::copy(tiny(), &base).unwrap();
    let s = SweepConfig {
        base: base.clone(),
        out_dir: dir.path().join("sweep"),
        ..sweep("combine = \"grid\"", SEEDS_BUDGETS).unwrap()
    };
    s.claim().unwrap();
    s.claim().unwrap();
    let text = std::fs::read_to_string(&base)
        .unwrap()
        .replace("steps = 150", "steps = 151");
    std::fs::write(&base, text).unwrap();
    let e = s.claim().unwrap_err().to_string();
    assert!(
        e.contains("was made by a different sweep file or base config"),
        "{e}"
    );
}
