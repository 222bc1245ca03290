//! `LoraAdapter`: a set of adapted modules and their config, saved and loaded in PEFT's layout.
//!
//! A PEFT adapter directory holds `adapter_model.safetensors`, with one pair of tensors per
//! module, `base_model.model.{module}.lora_A.weight` `(r, in)` and `…lora_B.weight` `(out, r)`,
//! and `adapter_config.json` with PEFT's `LoraConfig` fields. Both files are written through a
//! temporary file and a rename. Loading checks every key and shape against the modules the
//! caller expects; PEFT options that change the numbers and that ponder does not implement
//! (`use_dora`, `use_rslora`, `rank_pattern`, a `bias` other than `"none"`, …) are errors, and so
//! are keys ponder does not know. See PEFT's `utils/save_and_load.py` and `tuners/lora/config.py`
//! (<https://github.com/huggingface/peft>).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use candle::{DType, Device, Result, Tensor};
use serde_json::{json, Value};

use crate::config::LoraConfig;
use crate::factors::{LoraFactors, ModuleDims};

/// File name of the adapter weights.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// File name of the adapter config.
pub const CONFIG_FILE: &str = "adapter_config.json";

/// PEFT keys that only describe the run or the runtime and never change the adapter's numbers.
const IGNORED_KEYS: &[&str] = &[
    "auto_mapping",
    "base_model_name_or_path",
    "corda_config",
    "eva_config",
    "inference_mode",
    "megatron_core",
    "peft_version",
    "qalora_group_size",
    "revision",
    "runtime_config",
    "task_type",
];

/// An adapter: its config and the factors of every adapted module, by full module name.
#[derive(Debug, Clone)]
pub struct LoraAdapter {
    config: LoraConfig,
    modules: BTreeMap<String, LoraFactors>,
}

impl LoraAdapter {
    /// An adapter after checking that the config is valid, every module is one of its
    /// `target_modules`, and every module's factors have rank `r` and scale `lora_alpha / r`.
    pub fn new(config: LoraConfig, modules: BTreeMap<String, LoraFactors>) -> Result<Self> {
        config.validate()?;
        if modules.is_empty() {
            candle::bail!("lora adapter: no modules");
        }
        for (name, factors) in &modules {
            if !config.targets(name) {
                candle::bail!(
                    "lora adapter: module `{name}` matches none of target_modules {:?}",
                    config.target_modules
                );
            }
            if factors.rank() != config.r {
                candle::bail!(
                    "lora adapter: module `{name}` has A of shape {:?}, expected rank r = {}",
                    factors.a().dims(),
                    config.r
                );
            }
            let scale = config.scale();
            if (factors.scale() - scale).abs() > 1e-12 * scale.abs().max(1.0) {
                candle::bail!(
                    "lora adapter: module `{name}` has scale {}, expected lora_alpha / r = {scale}",
                    factors.scale()
                );
            }
        }
        Ok(Self { config, modules })
    }

    /// The config.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The factors of every module, by full module name.
    pub fn modules(&self) -> &BTreeMap<String, LoraFactors> {
        &self.modules
    }

    /// Takes the factors out of the adapter.
    pub fn into_modules(self) -> BTreeMap<String, LoraFactors> {
        self.modules
    }

    /// Writes `adapter_model.safetensors` (in the factors' dtype) and `adapter_config.json` into
    /// `dir`, creating it if needed; each file goes through a temporary file and a rename.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .map_err(|e| candle::Error::Msg(format!("{}: cannot create: {e}", dir.display())))?;
        let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
        for (name, factors) in &self.modules {
            tensors.insert(key(name, "A"), factors.a().clone());
            tensors.insert(key(name, "B"), factors.b().clone());
        }
        ponder_nn::save_safetensors(&dir.join(WEIGHTS_FILE), &tensors)?;

        let cfg = &self.config;
        let text = serde_json::to_string_pretty(&json!({
            "peft_type": "LORA",
            "r": cfg.r,
            "lora_alpha": cfg.lora_alpha,
            "lora_dropout": cfg.lora_dropout,
            "target_modules": cfg.target_modules,
            "bias": "none",
            "fan_in_fan_out": false,
            "use_rslora": false,
            "use_dora": false,
            "rank_pattern": {},
            "alpha_pattern": {},
            "modules_to_save": null,
            "init_lora_weights": true,
            "inference_mode": true,
            "task_type": null,
        }))
        .map_err(|e| candle::Error::Msg(format!("{CONFIG_FILE}: cannot serialize: {e}")))?;
        let config = dir.join(CONFIG_FILE);
        ponder_base::write_atomic(&config, (text + "\n").as_bytes())
            .map_err(|e| candle::Error::Msg(format!("{}: cannot write: {e}", config.display())))
    }

    /// Reads the adapter in `dir`, expecting exactly the modules in `expected` with their widths,
    /// and converts the factors to `dtype` on `device`.
    ///
    /// A missing, unexpected or misshapen tensor, a module outside `target_modules`, an invalid
    /// config, an unsupported PEFT option or an unknown config key is an error naming the file,
    /// the key and, for shapes, both shapes.
    pub fn load(
        dir: &Path,
        expected: &BTreeMap<String, ModuleDims>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let config = read_config(&config_path)?;

        let path = dir.join(WEIGHTS_FILE);
        let ctx = |msg: String| candle::Error::Msg(format!("{}: {msg}", path.display()));
        let bytes = std::fs::read(&path).map_err(|e| ctx(format!("cannot read: {e}")))?;
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| ctx(format!("not a valid safetensors file ({e})")))?;
        let mut unseen: BTreeSet<String> = file.names().into_iter().map(str::to_string).collect();
        let mut modules = BTreeMap::new();
        for (name, dims) in expected {
            if !config.targets(name) {
                return Err(candle::Error::Msg(format!(
                    "{}: module `{name}` matches none of target_modules {:?}",
                    config_path.display(),
                    config.target_modules
                )));
            }
            let mut load = |which: &str, shape: [usize; 2]| -> Result<Tensor> {
                let key = key(name, which);
                if !unseen.remove(&key) {
                    return Err(ctx(format!(
                        "missing tensor `{key}` (expected shape {shape:?})"
                    )));
                }
                let view = file
                    .tensor(&key)
                    .map_err(|e| ctx(format!("tensor `{key}`: {e}")))?;
                if view.shape() != shape {
                    return Err(ctx(format!(
                        "tensor `{key}` has shape {:?}, expected {shape:?}",
                        view.shape()
                    )));
                }
                candle::safetensors::Load::load(&view, device)
                    .and_then(|t| t.to_dtype(dtype))
                    .map_err(|e| ctx(format!("tensor `{key}`: {e}")))
            };
            let a = load("A", [config.r, dims.in_dim])?;
            let b = load("B", [dims.out_dim, config.r])?;
            modules.insert(name.clone(), LoraFactors::new(a, b, config.scale())?);
        }
        if let Some(extra) = unseen.first() {
            return Err(ctx(format!(
                "unexpected tensor `{extra}` (expected modules {:?})",
                expected.keys().collect::<Vec<_>>()
            )));
        }
        Self::new(config, modules)
    }
}

/// PEFT's key for factor `which` (`"A"` or `"B"`) of `module`.
pub fn key(module: &str, which: &str) -> String {
    format!("base_model.model.{module}.lora_{which}.weight")
}

/// Reads and checks `adapter_config.json`, returning its [`LoraConfig`].
fn read_config(path: &Path) -> Result<LoraConfig> {
    let ctx = |msg: String| candle::Error::Msg(format!("{}: {msg}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| ctx(format!("cannot read: {e}")))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| ctx(format!("invalid json: {e}")))?;
    let Value::Object(mut map) = value else {
        return Err(ctx("expected a json object".into()));
    };
    let mut take = |key: &str| map.remove(key).unwrap_or(Value::Null);

    match take("peft_type") {
        Value::String(s) if s == "LORA" => {}
        other => return Err(ctx(format!("`peft_type` is {other}, expected \"LORA\""))),
    }
    let r = take("r");
    let r = r
        .as_u64()
        .ok_or_else(|| ctx(format!("`r` is {r}, expected a positive integer")))?
        as usize;
    let number = |key: &str, v: Value| match v.as_f64() {
        Some(x) => Ok(x),
        None => Err(ctx(format!("`{key}` is {v}, expected a number"))),
    };
    let lora_alpha = number("lora_alpha", take("lora_alpha"))?;
    let lora_dropout = number("lora_dropout", take("lora_dropout"))?;
    let target_modules = match take("target_modules") {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(ctx(format!("`target_modules` holds {other}, expected names"))),
            })
            .collect::<Result<Vec<_>>>()?,
        other => {
            return Err(ctx(format!(
                "`target_modules` is {other}, expected a list of names (regex targets are not supported)"
            )))
        }
    };

    // Options that change the numbers: only their plain-LoRA values are accepted.
    let plain: &[(&str, &[Value])] = &[
        ("bias", &[json!("none"), Value::Null]),
        ("fan_in_fan_out", &[json!(false), Value::Null]),
        ("use_rslora", &[json!(false), Value::Null]),
        ("use_dora", &[json!(false), Value::Null]),
        ("lora_bias", &[json!(false), Value::Null]),
        ("use_qalora", &[json!(false), Value::Null]),
        ("rank_pattern", &[json!({}), Value::Null]),
        ("alpha_pattern", &[json!({}), Value::Null]),
        ("loftq_config", &[json!({}), Value::Null]),
        ("modules_to_save", &[json!([]), Value::Null]),
        ("exclude_modules", &[json!([]), Value::Null]),
        ("layers_to_transform", &[json!([]), Value::Null]),
        ("layers_pattern", &[json!([]), Value::Null]),
        ("layer_replication", &[Value::Null]),
        ("megatron_config", &[Value::Null]),
        ("trainable_token_indices", &[Value::Null]),
        ("target_parameters", &[json!([]), Value::Null]),
        ("alora_invocation_tokens", &[Value::Null]),
        (
            "init_lora_weights",
            &[json!(true), json!(false), json!("gaussian"), Value::Null],
        ),
    ];
    for (key, allowed) in plain {
        let v = take(key);
        if !allowed.contains(&v) {
            let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return Err(ctx(format!(
                "`{key}` is {v}, which ponder does not implement (expected one of {})",
                allowed.join(", ")
            )));
        }
    }
    for key in IGNORED_KEYS {
        take(key);
    }
    if let Some(unknown) = map.keys().next() {
        return Err(ctx(format!(
            "unknown key `{unknown}`: ponder cannot tell whether it changes the adapter's numbers"
        )));
    }
    let config = LoraConfig {
        r,
        lora_alpha,
        lora_dropout,
        target_modules,
    };
    config
        .validate()
        .map_err(|e| ctx(format!("invalid config: {e}")))?;
    Ok(config)
}
