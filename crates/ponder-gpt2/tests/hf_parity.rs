//! Golden test: the backbone equals Hugging Face transformers' `GPT2LMHeadModel` on the random
//! weights of a tiny config (`tests/fixtures/gen_gpt2_tiny.py` made the fixture), and the
//! comparison is sharp enough to catch a wrong GELU or LayerNorm epsilon.

use std::path::{Path, PathBuf};

use candle::{DType, Device, IndexOp, Result, Tensor};
use ponder_gpt2::{load, Gpt2, Gpt2Config, LoadOptions, ModelSource};
use ponder_nn::{assert_close, max_abs_diff};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected() -> Result<std::collections::HashMap<String, Tensor>> {
    candle::safetensors::load(
        fixtures().join("gpt2_tiny_expected.safetensors"),
        &Device::Cpu,
    )
}

fn load_tiny() -> Result<Gpt2> {
    load_tiny_on(&Device::Cpu)
}

fn load_tiny_on(device: &Device) -> Result<Gpt2> {
    let hub = ponder_hub::Hub::new(ponder_hub::HubOptions::new("/nonexistent"));
    let options = LoadOptions {
        device: device.clone(),
        ..LoadOptions::cpu_f32()
    };
    load(
        &ModelSource::Local(fixtures().join("gpt2_tiny")),
        &hub,
        &options,
    )
}

/// The same weights under a modified config.
fn with_config(model: &Gpt2, edit: impl FnOnce(&mut Gpt2Config)) -> Result<Gpt2> {
    let mut config = model.config().clone();
    edit(&mut config);
    Gpt2::from_weights(config, model.weights()?, None)
}

fn last_logits(model: &Gpt2, ids: &Tensor) -> Result<Tensor> {
    model.logits(&model.forward(ids)?)?.i((.., 15, ..))
}

fn hidden_and_logits_match_transformers(device: &Device) -> Result<()> {
    let exp = expected()?;
    let ids = exp["input_ids"].to_dtype(DType::U32)?.to_device(device)?;
    let model = load_tiny_on(device)?;
    let hidden = model.forward(&ids)?;
    assert_close(&hidden, &exp["hidden"], 1e-4, 0.0)?;
    assert_close(&model.logits(&hidden)?, &exp["logits"], 1e-4, 0.0)
}

ponder_nn::test_device!(
    hidden_and_logits_match_transformers,
    parity_cpu,
    parity_cuda,
    parity_metal
);

#[test]
fn golden_test_catches_wrong_gelu() -> Result<()> {
    let exp = expected()?;
    let ids = exp["input_ids"].to_dtype(DType::U32)?;
    let erf = with_config(&load_tiny()?, |c| c.activation_function = "gelu".into())?;
    let logits = last_logits(&erf, &ids)?;
    // The exact GELU matches transformers' `gelu`, and is far from the `gelu_new` reference.
    assert_close(&logits, &exp["logits_erf"], 1e-4, 0.0)?;
    let gap = max_abs_diff(&logits, &exp["logits"].i((.., 15, ..))?)?;
    assert!(
        gap > 1e-3,
        "a wrong GELU must fail the 1e-4 golden check, gap {gap}"
    );
    Ok(())
}

#[test]
fn golden_test_catches_wrong_epsilon() -> Result<()> {
    let exp = expected()?;
    let ids = exp["input_ids"].to_dtype(DType::U32)?;
    let eps5 = with_config(&load_tiny()?, |c| c.layer_norm_epsilon = 1e-5)?;
    let logits = last_logits(&eps5, &ids)?;
    assert_close(&logits, &exp["logits_eps5"], 1e-4, 0.0)?;
    let gap = max_abs_diff(&logits, &exp["logits"].i((.., 15, ..))?)?;
    assert!(
        gap > 1e-3,
        "a wrong epsilon must fail the 1e-4 golden check, gap {gap}"
    );
    Ok(())
}

#[test]
fn saved_model_loads_back_identically() -> Result<()> {
    let model = load_tiny()?;
    let dir = tempfile::tempdir().map_err(candle::Error::wrap)?;
    ponder_gpt2::save(&model, dir.path())?;
    // Our writer uses names without the `transformer.` prefix, as the Hub's GPT-2 files do.
    let st = candle::safetensors::load(dir.path().join("model.safetensors"), &Device::Cpu)?;
    assert!(st.contains_key("h.1.mlp.c_proj.weight") && !st.contains_key("transformer.wte.weight"));
    let back = ponder_gpt2::load::load_local(
        &dir.path().join("model.safetensors"),
        &LoadOptions::cpu_f32(),
    )?;
    assert_eq!(back.config(), model.config());
    let ids = expected()?["input_ids"].to_dtype(DType::U32)?;
    assert_close(&back.forward(&ids)?, &model.forward(&ids)?, 0.0, 0.0)
}
