//! Tokenization tests on real code: GPT-2's ids, round trips, and agreement between the
//! compiled-in BPE and a `tokenizer.json` built from GPT-2's `vocab.json` + `merges.txt`.

use std::path::{Path, PathBuf};

use ponder_data::Tokenizer;

fn sample() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample_code.py");
    std::fs::read_to_string(p).unwrap()
}

fn samples() -> Vec<String> {
    vec![
        sample(),
        "Hello world".into(),
        "def foo(x):\n    return x + 1\n".into(),
        "\t\t\tindent\n\n\n    \t  mixed   \t".into(),
        "     leading and trailing     ".into(),
        "fn main() { let ü = \"naïve\"; println!(\"{ü}\"); }\n".into(),
        "a<|endoftext|>b".into(),
    ]
}

/// GPT-2's `encoder.json` and `vocab.bpe`, as shipped inside the `tiktoken-rs` crate that the
/// build downloaded into Cargo's registry (`$CARGO_HOME`, default `~/.cargo`).
fn gpt2_vocab_merges() -> (PathBuf, PathBuf) {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cargo")
        });
    let src = cargo_home.join("registry").join("src");
    let assets = std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("tiktoken-rs-0.12.1").join("assets"))
        .find(|p| p.join("encoder.json").is_file())
        .unwrap_or_else(|| {
            panic!(
                "tiktoken-rs-0.12.1/assets not found under {}",
                src.display()
            )
        });
    (assets.join("encoder.json"), assets.join("vocab.bpe"))
}

#[test]
fn gpt2_ids_are_gpt2s() {
    let t = Tokenizer::gpt2().unwrap();
    assert_eq!(t.encode("Hello world").unwrap(), vec![15496, 995]);
    assert_eq!(
        t.encode("Hello world<|endoftext|>def foo(x):\n    return x + 1")
            .unwrap(),
        vec![
            15496, 995, 50256, 4299, 22944, 7, 87, 2599, 198, 220, 220, 220, 1441, 2124, 1343, 352
        ]
    );
    assert_eq!(t.eot_id(), 50256);
    assert_eq!(t.vocab_size(), 50257);
    assert_eq!(t.pad_id(), None);
    assert_eq!(t.with_pad().pad_id(), Some(50257));
}

#[test]
fn round_trips_on_code() {
    let t = Tokenizer::gpt2().unwrap();
    for s in samples() {
        let ids = t.encode(&s).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), s);
    }
}

#[test]
fn tokenizer_json_agrees_with_compiled_bpe_id_for_id() {
    let (vocab, merges) = gpt2_vocab_merges();
    let from_files = Tokenizer::from_vocab_merges(&vocab, &merges).unwrap();
    // Through a saved tokenizer.json too, the form users download from the Hub.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tokenizer.json");
    from_files.save(&json).unwrap();
    let hf = Tokenizer::from_file(&json).unwrap();
    assert_eq!(hf.kind(), "tokenizer.json");
    assert_eq!(hf.eot_id(), 50256);
    assert_eq!(hf.vocab_size(), 50257);
    let gpt2 = Tokenizer::gpt2().unwrap();
    for s in samples() {
        let a = hf.encode(&s).unwrap();
        assert_eq!(a, gpt2.encode(&s).unwrap(), "ids differ on {s:?}");
        assert_eq!(hf.decode(&a).unwrap(), s);
    }
}

#[test]
fn pad_decodes_to_nothing_and_unknown_ids_fail() {
    let t = Tokenizer::gpt2().unwrap().with_pad();
    assert_eq!(t.decode(&[15496, 50257, 995]).unwrap(), "Hello world");
    assert!(t
        .decode(&[50258])
        .unwrap_err()
        .to_string()
        .contains("outside the vocabulary"));
}

#[test]
fn a_broken_tokenizer_file_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokenizer.json");
    std::fs::write(&p, "{ not json").unwrap();
    let err = Tokenizer::from_file(&p).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json: not a usable tokenizer"),
        "{err}"
    );
}
