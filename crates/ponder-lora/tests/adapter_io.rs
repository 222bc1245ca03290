//! PEFT adapter files: save → load round trips, and every kind of bad file (missing key, wrong
//! shape, extra key, invalid or unsupported config, unknown config key) is an error that names
//! the file, the key and, for shapes, both shapes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle::{DType, Device, Result, Tensor};
use ponder_lora::adapter::{key, CONFIG_FILE, WEIGHTS_FILE};
use ponder_lora::{
    Init, LoraAdapter, LoraConfig, LoraFactors, LoraFastConfig, LoraFastLayer, ModuleDims,
};
use serde_json::{json, Value};

fn randn(shape: &[usize], seed: u64) -> Result<Tensor> {
    let mut rng = ponder_nn::init::rng_for(seed, "adapter-io-test");
    ponder_nn::init::normal(shape, 0.5, &mut rng, DType::F32, &Device::Cpu)
}

fn config() -> LoraConfig {
    LoraConfig {
        r: 3,
        lora_alpha: 6.0,
        lora_dropout: 0.05,
        target_modules: vec!["c_attn".into(), "c_fc".into()],
    }
}

fn dims() -> BTreeMap<String, ModuleDims> {
    [
        ("h.0.attn.c_attn", (8, 24)),
        ("h.0.mlp.c_fc", (8, 32)),
        ("h.1.attn.c_attn", (8, 24)),
    ]
    .into_iter()
    .map(|(name, (in_dim, out_dim))| (name.to_string(), ModuleDims { in_dim, out_dim }))
    .collect()
}

fn adapter() -> Result<LoraAdapter> {
    let cfg = config();
    let mut modules = BTreeMap::new();
    for (i, (name, d)) in dims().into_iter().enumerate() {
        let a = randn(&[cfg.r, d.in_dim], 2 * i as u64)?;
        let b = randn(&[d.out_dim, cfg.r], 2 * i as u64 + 1)?;
        modules.insert(name, LoraFactors::new(a, b, cfg.scale())?);
    }
    LoraAdapter::new(cfg, modules)
}

fn load(dir: &Path) -> Result<LoraAdapter> {
    LoraAdapter::load(dir, &dims(), DType::F32, &Device::Cpu)
}

fn load_err(dir: &Path) -> String {
    match load(dir) {
        Ok(_) => panic!("loading a bad adapter succeeded"),
        Err(e) => e.to_string(),
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join(CONFIG_FILE);
    let mut value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(value.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string(&value).unwrap()).unwrap();
}

fn edit_weights(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let path = dir.join(WEIGHTS_FILE);
    let mut tensors = candle::safetensors::load(&path, &Device::Cpu).unwrap();
    edit(&mut tensors);
    candle::safetensors::save(&tensors, &path).unwrap();
}

#[test]
fn round_trip_is_exact() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let saved = adapter()?;
    saved.save(dir.path())?;
    let names: Vec<_> = std::fs::read_dir(dir.path())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    assert_eq!(names.len(), 2, "temporary files left behind: {names:?}");

    let loaded = load(dir.path())?;
    assert_eq!(loaded.config(), saved.config());
    for (name, f) in saved.modules() {
        let g = &loaded.modules()[name];
        assert_eq!(f.a().to_vec2::<f32>()?, g.a().to_vec2::<f32>()?);
        assert_eq!(f.b().to_vec2::<f32>()?, g.b().to_vec2::<f32>()?);
        assert_eq!(f.scale(), g.scale());
    }
    // PEFT's layout: the key names and the config fields PEFT reads.
    let st = candle::safetensors::load(dir.path().join(WEIGHTS_FILE), &Device::Cpu)?;
    assert_eq!(
        st["base_model.model.h.0.mlp.c_fc.lora_B.weight"].dims(),
        [32, 3]
    );
    let cfg: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join(CONFIG_FILE))?)?;
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["bias"], "none");
    assert_eq!(cfg["fan_in_fan_out"], false);
    assert_eq!(cfg["r"], 3);
    Ok(())
}

#[test]
fn fast_layer_round_trip() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = LoraFastConfig::original(
        16,
        4,
        ponder_lora::LoraUpdate {
            lr: 0.1,
            block_size: 4,
            max_grad_norm: None,
        },
    );
    let layer = LoraFastLayer::new(
        config.clone(),
        Init::KaimingUniform,
        7,
        DType::F32,
        &Device::Cpu,
    )?;
    layer.to_adapter()?.save(dir.path())?;
    let adapter = LoraAdapter::load(dir.path(), &config.module_dims(), DType::F32, &Device::Cpu)?;
    let back = LoraFastLayer::from_adapter(16, &adapter, config.update)?;
    assert_eq!(back.config(), &config);
    for (name, t) in layer.trainable() {
        assert_eq!(
            t.to_vec2::<f32>()?,
            back.trainable()[&name].to_vec2::<f32>()?,
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn missing_extra_and_misshapen_tensors_are_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join(WEIGHTS_FILE).display().to_string();
    let missing = key("h.1.attn.c_attn", "B");

    adapter()?.save(dir.path())?;
    edit_weights(dir.path(), |t| {
        t.remove(&missing);
    });
    let err = load_err(dir.path());
    assert!(
        err.contains(&file) && err.contains(&missing) && err.contains("[24, 3]"),
        "{err}"
    );

    adapter()?.save(dir.path())?;
    let a = key("h.0.mlp.c_fc", "A");
    edit_weights(dir.path(), |t| {
        t.insert(
            a.clone(),
            Tensor::zeros((3, 9), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let err = load_err(dir.path());
    assert!(
        err.contains(&a) && err.contains("[3, 9]") && err.contains("[3, 8]"),
        "{err}"
    );

    adapter()?.save(dir.path())?;
    let extra = key("h.2.attn.c_attn", "A");
    edit_weights(dir.path(), |t| {
        t.insert(
            extra.clone(),
            Tensor::zeros((3, 8), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    let err = load_err(dir.path());
    assert!(err.contains("unexpected") && err.contains(&extra), "{err}");

    // A module the caller expects but the config does not target.
    adapter()?.save(dir.path())?;
    edit_config(dir.path(), |c| {
        c.insert("target_modules".into(), json!(["c_attn"]));
    });
    let err = load_err(dir.path());
    assert!(
        err.contains(CONFIG_FILE) && err.contains("h.0.mlp.c_fc"),
        "{err}"
    );
    Ok(())
}

#[test]
fn bad_and_unsupported_configs_are_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("use_dora", json!(true), "use_dora"),
        ("use_rslora", json!(true), "use_rslora"),
        ("bias", json!("lora_only"), "bias"),
        ("fan_in_fan_out", json!(true), "fan_in_fan_out"),
        ("rank_pattern", json!({"c_fc": 8}), "rank_pattern"),
        ("modules_to_save", json!(["lm_head"]), "modules_to_save"),
        ("init_lora_weights", json!("pissa"), "init_lora_weights"),
        ("peft_type", json!("IA3"), "peft_type"),
        ("r", json!(0), "r must be > 0"),
        ("r", json!(2.5), "`r`"),
        ("lora_dropout", json!(1.5), "lora_dropout"),
        ("target_modules", json!("c_.*"), "regex"),
        ("use_magic", json!(false), "unknown key `use_magic`"),
    ];
    for (field, value, expected) in cases {
        adapter()?.save(dir.path())?;
        edit_config(dir.path(), |c| {
            c.insert(field.into(), value.clone());
        });
        let err = load_err(dir.path());
        assert!(err.contains(CONFIG_FILE), "{field} = {value}: {err}");
        assert!(err.contains(expected), "{field} = {value}: {err}");
    }
    // A wrong r shows up as a shape error against the weights.
    adapter()?.save(dir.path())?;
    edit_config(dir.path(), |c| {
        c.insert("r".into(), json!(4));
    });
    let err = load_err(dir.path());
    assert!(err.contains("[3, 8]") && err.contains("[4, 8]"), "{err}");

    // Keys PEFT writes that do not change the numbers are accepted.
    adapter()?.save(dir.path())?;
    edit_config(dir.path(), |c| {
        c.insert("base_model_name_or_path".into(), json!("gpt2"));
        c.insert("task_type".into(), json!("CAUSAL_LM"));
        c.insert("peft_version".into(), json!("0.17.1"));
        c.insert("use_dora".into(), json!(false));
        c.insert("lora_alpha".into(), json!(6));
    });
    load(dir.path())?;

    // A missing file names itself.
    std::fs::remove_file(dir.path().join(CONFIG_FILE))?;
    assert!(load_err(dir.path()).contains(CONFIG_FILE));
    Ok(())
}

#[test]
fn new_checks_rank_scale_and_targets() -> Result<()> {
    let cfg = config();
    let f = |r: usize, scale: f64| LoraFactors::new(randn(&[r, 8], 0)?, randn(&[24, r], 1)?, scale);
    let one = |name: &str, f: LoraFactors| [(name.to_string(), f)].into_iter().collect();
    assert!(LoraAdapter::new(cfg.clone(), one("h.0.attn.c_attn", f(3, 2.0)?)).is_ok());
    let err = LoraAdapter::new(cfg.clone(), one("h.0.attn.c_attn", f(2, 2.0)?)).unwrap_err();
    assert!(err.to_string().contains("rank r = 3"), "{err}");
    let err = LoraAdapter::new(cfg.clone(), one("h.0.attn.c_attn", f(3, 1.0)?)).unwrap_err();
    assert!(err.to_string().contains("scale"), "{err}");
    let err = LoraAdapter::new(cfg, one("h.0.attn.c_proj", f(3, 2.0)?)).unwrap_err();
    assert!(err.to_string().contains("c_proj"), "{err}");
    Ok(())
}
