//! Bad checkpoints and configs give errors that name the file, the tensor and what was expected.

use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use ponder_gpt2::{load, save, Gpt2Config, LoadOptions, ModelSource};
use ponder_hub::{Hub, HubOptions};

fn tiny_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny")
}

fn offline_hub(cache: &Path) -> Hub {
    Hub::new(HubOptions {
        offline: true,
        ..HubOptions::new(cache)
    })
}

/// A copy of the fixture model in a temp folder, with its `model.safetensors` replaced.
fn with_weights(bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny_dir().join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::write(dir.path().join("model.safetensors"), bytes).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    let hub = offline_hub(Path::new("/nonexistent"));
    match load(
        &ModelSource::Local(dir.to_path_buf()),
        &hub,
        &LoadOptions::cpu_f32(),
    ) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn fixture_tensors() -> std::collections::HashMap<String, Tensor> {
    candle::safetensors::load(tiny_dir().join("model.safetensors"), &Device::Cpu).unwrap()
}

fn write_tensors(tensors: &std::collections::HashMap<String, Tensor>) -> tempfile::TempDir {
    let dir = with_weights(b"");
    candle::safetensors::save(tensors, dir.path().join("model.safetensors")).unwrap();
    dir
}

#[test]
fn truncated_file() {
    let bytes = std::fs::read(tiny_dir().join("model.safetensors")).unwrap();
    let dir = with_weights(&bytes[..bytes.len() / 2]);
    let err = load_err(dir.path());
    assert!(
        err.contains("model.safetensors: not a valid safetensors file"),
        "{err}"
    );
}

#[test]
fn garbage_file() {
    let dir = with_weights(b"\x08\x00\x00\x00\x00\x00\x00\x00not json");
    let err = load_err(dir.path());
    assert!(err.contains("not a valid safetensors file"), "{err}");
}

#[test]
fn missing_tensor_names_it_and_its_shape() {
    let mut t = fixture_tensors();
    t.remove("transformer.h.1.mlp.c_fc.weight").unwrap();
    let err = load_err(write_tensors(&t).path());
    assert!(
        err.contains("missing tensor `h.1.mlp.c_fc.weight` (expected shape [32, 128])"),
        "{err}"
    );
}

#[test]
fn wrong_shape_names_both_shapes() {
    let mut t = fixture_tensors();
    t.insert(
        "transformer.h.0.attn.c_attn.weight".into(),
        Tensor::zeros((96, 32), DType::F32, &Device::Cpu).unwrap(),
    );
    let err = load_err(write_tensors(&t).path());
    assert!(
        err.contains(
            "tensor `transformer.h.0.attn.c_attn.weight` has shape [96, 32], expected [32, 96]"
        ),
        "{err}"
    );
}

#[test]
fn unexpected_tensor_is_named() {
    let mut t = fixture_tensors();
    t.insert(
        "transformer.h.2.ln_1.weight".into(),
        Tensor::zeros(32, DType::F32, &Device::Cpu).unwrap(),
    );
    let err = load_err(write_tensors(&t).path());
    assert!(err.contains("unexpected tensor `h.2.ln_1.weight`"), "{err}");
}

#[test]
fn unknown_config_key_names_the_file_and_key() {
    let dir = with_weights(&std::fs::read(tiny_dir().join("model.safetensors")).unwrap());
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    config["n_layers"] = 2.into();
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("config.json: unknown config key `n_layers`"),
        "{err}"
    );
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("config.json: not found"), "{err}");
}

#[test]
fn unknown_hub_id_offline_says_how_to_get_it() {
    let cache = tempfile::tempdir().unwrap();
    let hub = offline_hub(cache.path());
    let err = load(
        &ModelSource::Hub("no-such-org/no-such-model".into()),
        &hub,
        &LoadOptions::cpu_f32(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("no-such-org/no-such-model: config.json is not in the Hugging Face cache"),
        "{err}"
    );
    assert!(err.contains("offline mode is on"), "{err}");
}

#[test]
fn hub_id_loads_from_a_hand_built_cache_offline() {
    // A model saved by ponder, placed in the HF cache layout, loads by id with no network.
    let model = ponder_gpt2::random(
        Gpt2Config {
            vocab_size: 64,
            ..Gpt2Config::tiny()
        },
        3,
        &LoadOptions::cpu_f32(),
    )
    .unwrap();
    let saved = tempfile::tempdir().unwrap();
    save(&model, saved.path()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    for file in ["config.json", "model.safetensors"] {
        let bytes = std::fs::read(saved.path().join(file)).unwrap();
        ponder_hub::insert_into_cache(
            cache.path(),
            "openai-community/gpt2",
            "0123abcd",
            file,
            &bytes,
        )
        .unwrap();
    }
    let loaded = load(
        &ModelSource::Hub("gpt2".into()),
        &offline_hub(cache.path()),
        &LoadOptions::cpu_f32(),
    )
    .unwrap();
    assert_eq!(loaded.config(), model.config());
    let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    ponder_nn::assert_close(
        &loaded.forward(&ids).unwrap(),
        &model.forward(&ids).unwrap(),
        0.0,
        0.0,
    )
    .unwrap();
}
