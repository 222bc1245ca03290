//! Preparing corpora: token shards cached and reused, rebuilt when corrupt or stale, splits
//! disjoint, decontamination applied; and the embedded default's BPE trained deterministically.

use std::path::Path;

use ponder_data::dataset::{prepare, PrepareSpec};
use ponder_data::shard::Rebuilt;
use ponder_data::{scan_dir, Language, ScanOptions, Split, SplitFractions, Tokenizer};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn tree(root: &Path) {
    for i in 0..40 {
        write(
            root,
            &format!("pkg{}/mod{i}.py", i % 4),
            &format!("def f{i}(x):\n    return x * {i} + {}\n", i * 7),
        );
    }
}

#[test]
fn shards_are_cached_and_rebuilt_when_corrupt() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let cache = tempfile::tempdir().unwrap();
    let corpus = scan_dir(
        "toy",
        src.path(),
        Language::Python,
        &ScanOptions::standard(),
    )
    .unwrap();
    let tok = Tokenizer::gpt2().unwrap();
    let spec = PrepareSpec {
        corpus: &corpus,
        tokenizer: &tok,
        fractions: SplitFractions {
            validation: 0.2,
            test: 0.2,
        },
        salt: "",
        decontaminator: None,
        cache_dir: cache.path(),
    };
    let first = prepare(&spec).unwrap();
    assert!(first.rebuilt.values().all(|r| *r == Rebuilt::Missing));
    let n: usize = first.manifest.files.len();
    assert_eq!(n, 40);
    // Every document appears once, in its split, joined by <|endoftext|>.
    let docs_in = |s: Split| first.manifest.files.iter().filter(|f| f.split == s).count();
    for s in [Split::Train, Split::Validation, Split::Test] {
        let eots = first.streams[&s].iter().filter(|&&t| t == 50256).count();
        assert_eq!(eots + 1, docs_in(s).max(1), "{s:?}");
    }
    let second = prepare(&spec).unwrap();
    assert!(second.rebuilt.values().all(|r| *r == Rebuilt::No));
    assert_eq!(second.streams, first.streams);
    // Corrupt the train shard: detected and rebuilt with the same tokens.
    let train = first.dir.join("train.tok");
    let bytes = std::fs::read(&train).unwrap();
    std::fs::write(&train, &bytes[..bytes.len() - 3]).unwrap();
    let third = prepare(&spec).unwrap();
    assert!(matches!(third.rebuilt[&Split::Train], Rebuilt::Corrupt(_)));
    assert_eq!(third.streams, first.streams);
    // A changed file changes the manifest, so the shards are stale.
    write(src.path(), "pkg0/mod0.py", "def f0(x):\n    return -x\n");
    let corpus2 = scan_dir(
        "toy",
        src.path(),
        Language::Python,
        &ScanOptions::standard(),
    )
    .unwrap();
    let fourth = prepare(&PrepareSpec {
        corpus: &corpus2,
        ..spec
    })
    .unwrap();
    assert!(fourth.rebuilt.values().any(|r| *r == Rebuilt::Stale));
}

#[test]
fn byte_level_bpe_trains_deterministically_and_round_trips() {
    let texts: Vec<String> = (0..200)
        .map(|i| {
            format!(
                "def function_{i}(value):\n    total = value * {i}\n    return total + {}\n",
                i % 7
            )
        })
        .collect();
    let a = Tokenizer::train_byte_level_bpe(&texts, 400, 2).unwrap();
    let b = Tokenizer::train_byte_level_bpe(&texts, 400, 2).unwrap();
    assert_eq!(
        a.fingerprint(),
        b.fingerprint(),
        "two trainings on the same texts must agree"
    );
    assert!(
        a.vocab_size() > 257 && a.vocab_size() <= 400,
        "{}",
        a.vocab_size()
    );
    assert_eq!(a.eot_id(), 0);
    let sample = "def function_3(value):\n\treturn  value  # ünïcode\n";
    let ids = a.encode(sample).unwrap();
    assert_eq!(a.decode(&ids).unwrap(), sample);
    assert!(ids.len() < sample.len(), "merges should compress code");
    let dir = tempfile::tempdir().unwrap();
    a.save(&dir.path().join("tokenizer.json")).unwrap();
    let back = Tokenizer::from_file(&dir.path().join("tokenizer.json")).unwrap();
    assert_eq!(back.encode(sample).unwrap(), ids);
    assert!(Tokenizer::train_byte_level_bpe(&texts, 100, 2).is_err());
}

#[test]
fn data_decontaminate_drops_files_holding_a_benchmark_solution() {
    let src = tempfile::tempdir().unwrap();
    tree(src.path());
    let solution = "    total = 0\n    for value in values:\n        total += value * value\n    return total\n";
    write(
        src.path(),
        "pkg0/leak.py",
        &format!("def sum_squares(values):\n{solution}"),
    );
    let bench = src.path().join("bench.jsonl");
    std::fs::write(
        &bench,
        serde_json::json!({"task_id": "HumanEval/0", "prompt": "def sum_squares(values):\n", "entry_point": "sum_squares", "canonical_solution": solution, "test": "def check(c): pass"})
            .to_string(),
    )
    .unwrap();
    let config = |decontaminate: Vec<String>| ponder_data::DataConfig {
        sources: vec![src.path().display().to_string()],
        hf: None,
        language: "python".into(),
        validation: 0.0,
        test: 0.0,
        seq_len: 16,
        tokenizer: ponder_data::TokenizerConfig::Gpt2,
        decontaminate,
    };
    let files = |decontaminate: Vec<String>| -> Vec<String> {
        let cache = tempfile::tempdir().unwrap();
        let data = ponder_data::build::build(
            &config(decontaminate),
            cache.path(),
            50_257,
            &Default::default(),
        )
        .unwrap();
        data.manifests[0]
            .files
            .iter()
            .map(|f| f.path.clone())
            .collect()
    };
    let all = files(Vec::new());
    assert!(all.iter().any(|p| p.ends_with("leak.py")));
    let clean = files(vec![bench.display().to_string()]);
    assert_eq!(clean.len(), all.len() - 1);
    assert!(!clean.iter().any(|p| p.ends_with("leak.py")));

    let cache = tempfile::tempdir().unwrap();
    let missing = config(vec!["/nonexistent/HumanEval.jsonl.gz".into()]);
    let err = ponder_data::build::build(&missing, cache.path(), 50_257, &Default::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("data.decontaminate") && err.contains("/nonexistent/HumanEval.jsonl.gz"),
        "{err}"
    );
}
