//! `Gpt2Config`: the GPT-2 hyper-parameters under Hugging Face's names, read from an HF
//! `config.json` or built by a named constructor.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// GPT-2 hyper-parameters, with the field names of Hugging Face's `GPT2Config`.
///
/// There is no `Default`: pick a named constructor ([`Gpt2Config::gpt2_small`], …) or read a
/// `config.json` with [`Gpt2Config::from_json_file`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    /// Vocabulary size (rows of `wte`), 50,257 for OpenAI's checkpoints.
    pub vocab_size: usize,
    /// Maximum sequence length (rows of `wpe`).
    pub n_positions: usize,
    /// Model width `d`.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Number of attention heads; must divide `n_embd`.
    pub n_head: usize,
    /// Inner width of the MLP; `None` means `4 · n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// `gelu_new` (tanh approximation, GPT-2's), `gelu_pytorch_tanh` (the same), or `gelu` (exact).
    pub activation_function: String,
    /// LayerNorm epsilon (1e-5 for GPT-2).
    pub layer_norm_epsilon: f64,
    /// Standard deviation of the random initialization.
    pub initializer_range: f64,
    /// Dropout on the residual branches in training mode.
    pub resid_pdrop: f64,
    /// Dropout on the embeddings in training mode.
    pub embd_pdrop: f64,
    /// Dropout on the attention probabilities in training mode.
    pub attn_pdrop: f64,
    /// Id of `<|endoftext|>` used as beginning of text.
    #[serde(default = "endoftext")]
    pub bos_token_id: u32,
    /// Id of `<|endoftext|>` used as end of text.
    #[serde(default = "endoftext")]
    pub eos_token_id: u32,
}

fn endoftext() -> u32 {
    50_256
}

/// The MLP activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// GPT-2's tanh approximation.
    GeluTanh,
    /// The exact erf form.
    GeluErf,
}

/// Keys of an HF `config.json` that ponder reads (above) or knows to have no effect on a GPT-2
/// forward pass (below: `GPT2Config` and `PretrainedConfig` attributes of transformers 5).
/// Any other key is an error, so that a typo or an unsupported option never passes silently.
const IGNORED_HF_KEYS: &[&str] = &[
    "_name_or_path",
    "add_cross_attention",
    "architectures",
    "bad_words_ids",
    "begin_suppress_tokens",
    "chunk_size_feed_forward",
    "cross_attention_hidden_size",
    "decoder_start_token_id",
    "diversity_penalty",
    "do_sample",
    "dtype",
    "early_stopping",
    "encoder_no_repeat_ngram_size",
    "exponential_decay_length_penalty",
    "finetuning_task",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "id2label",
    "is_decoder",
    "is_encoder_decoder",
    "label2id",
    "length_penalty",
    "max_length",
    "min_length",
    "model_type",
    "n_ctx",
    "no_repeat_ngram_size",
    "num_beam_groups",
    "num_beams",
    "num_return_sequences",
    "output_attentions",
    "output_hidden_states",
    "output_scores",
    "pad_token_id",
    "prefix",
    "problem_type",
    "pruned_heads",
    "remove_invalid_values",
    "repetition_penalty",
    "return_dict",
    "return_dict_in_generate",
    "sep_token_id",
    "summary_activation",
    "summary_first_dropout",
    "summary_proj_to_labels",
    "summary_type",
    "summary_use_proj",
    "suppress_tokens",
    "task_specific_params",
    "temperature",
    "tf_legacy_loss",
    "tie_encoder_decoder",
    "tie_word_embeddings",
    "tokenizer_class",
    "top_k",
    "top_p",
    "torch_dtype",
    "torchscript",
    "transformers_version",
    "typical_p",
    "use_bfloat16",
    "use_cache",
];

/// Keys that change the numbers; they must hold the value ponder implements.
const CHECKED_HF_KEYS: &[(&str, &str)] = &[
    ("scale_attn_weights", "true"),
    ("scale_attn_by_inverse_layer_idx", "false"),
    ("reorder_and_upcast_attn", "false"),
    ("tie_word_embeddings", "true"),
    ("add_cross_attention", "false"),
];

const READ_KEYS: &[&str] = &[
    "vocab_size",
    "n_positions",
    "n_embd",
    "n_layer",
    "n_head",
    "n_inner",
    "activation_function",
    "layer_norm_epsilon",
    "initializer_range",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "bos_token_id",
    "eos_token_id",
];

impl Gpt2Config {
    /// GPT-2 small (124M): 12 layers, width 768, 12 heads.
    pub fn gpt2_small() -> Self {
        Self::openai(12, 768, 12)
    }

    /// GPT-2 medium (355M): 24 layers, width 1024, 16 heads.
    pub fn gpt2_medium() -> Self {
        Self::openai(24, 1024, 16)
    }

    /// GPT-2 large (774M): 36 layers, width 1280, 20 heads.
    pub fn gpt2_large() -> Self {
        Self::openai(36, 1280, 20)
    }

    /// GPT-2 XL (1.5B): 48 layers, width 1600, 25 heads.
    pub fn gpt2_xl() -> Self {
        Self::openai(48, 1600, 25)
    }

    /// A tiny GPT-2 with the real vocabulary, for tests and offline smoke runs: 2 layers,
    /// width 64, 4 heads, 256 positions.
    pub fn tiny() -> Self {
        Self {
            n_positions: 256,
            ..Self::openai(2, 64, 4)
        }
    }

    fn openai(n_layer: usize, n_embd: usize, n_head: usize) -> Self {
        Self {
            vocab_size: 50_257,
            n_positions: 1024,
            n_embd,
            n_layer,
            n_head,
            n_inner: None,
            activation_function: "gelu_new".into(),
            layer_norm_epsilon: 1e-5,
            initializer_range: 0.02,
            resid_pdrop: 0.1,
            embd_pdrop: 0.1,
            attn_pdrop: 0.1,
            bos_token_id: 50_256,
            eos_token_id: 50_256,
        }
    }

    /// The named presets: `gpt2`/`small`, `gpt2-medium`/`medium`, `gpt2-large`/`large`,
    /// `gpt2-xl`/`xl`, `tiny`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "gpt2" | "small" => Some(Self::gpt2_small()),
            "gpt2-medium" | "medium" => Some(Self::gpt2_medium()),
            "gpt2-large" | "large" => Some(Self::gpt2_large()),
            "gpt2-xl" | "xl" => Some(Self::gpt2_xl()),
            "tiny" => Some(Self::tiny()),
            _ => None,
        }
    }

    /// Reads an HF `config.json`. Unknown keys and options that ponder does not implement are
    /// errors naming the key.
    pub fn from_json_file(path: &Path) -> candle::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| candle::Error::Msg(format!("{}: cannot read: {e}", path.display())))?;
        Self::from_json_str(&text)
            .map_err(|e| candle::Error::Msg(format!("{}: {e}", path.display())))
    }

    /// Parses the text of an HF `config.json`; see [`Gpt2Config::from_json_file`].
    pub fn from_json_str(text: &str) -> candle::Result<Self> {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| candle::Error::Msg(format!("not a JSON object: {e}")))?;
        for (key, value) in &map {
            if let Some((_, want)) = CHECKED_HF_KEYS.iter().find(|(k, _)| k == key) {
                if value != &serde_json::from_str::<serde_json::Value>(want).expect("valid literal")
                {
                    candle::bail!(
                        "config key `{key}` = {value} is not supported (ponder implements {want})"
                    );
                }
            } else if !READ_KEYS.contains(&key.as_str()) && !IGNORED_HF_KEYS.contains(&key.as_str())
            {
                candle::bail!("unknown config key `{key}`");
            }
        }
        if let Some(model_type) = map.get("model_type") {
            if model_type != "gpt2" {
                candle::bail!("config key `model_type` = {model_type}, expected \"gpt2\"");
            }
        }
        let config: Self = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| candle::Error::Msg(format!("bad GPT-2 config: {e}")))?;
        config.validate()?;
        Ok(config)
    }

    /// The HF `config.json` text for this configuration, loadable by transformers.
    pub fn to_hf_json(&self) -> String {
        let mut value = serde_json::to_value(self).expect("config serializes");
        let map = value.as_object_mut().expect("config is an object");
        map.insert("model_type".into(), "gpt2".into());
        map.insert(
            "architectures".into(),
            serde_json::json!(["GPT2LMHeadModel"]),
        );
        map.insert("tie_word_embeddings".into(), true.into());
        map.insert("n_ctx".into(), self.n_positions.into());
        serde_json::to_string_pretty(&value).expect("config serializes")
    }

    /// Checks the invariants that the model relies on.
    pub fn validate(&self) -> candle::Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
        ];
        for (name, v) in positive {
            if v == 0 {
                candle::bail!("config key `{name}` must be positive");
            }
        }
        if self.n_embd % self.n_head != 0 {
            candle::bail!(
                "config: n_embd {} is not divisible by n_head {}",
                self.n_embd,
                self.n_head
            );
        }
        self.activation()?;
        if self.layer_norm_epsilon.is_nan() || self.layer_norm_epsilon <= 0.0 {
            candle::bail!(
                "config key `layer_norm_epsilon` must be positive, got {}",
                self.layer_norm_epsilon
            );
        }
        for (name, p) in [
            ("resid_pdrop", self.resid_pdrop),
            ("embd_pdrop", self.embd_pdrop),
            ("attn_pdrop", self.attn_pdrop),
        ] {
            if !(0.0..1.0).contains(&p) {
                candle::bail!("config key `{name}` must be in [0, 1), got {p}");
            }
        }
        Ok(())
    }

    /// The MLP activation named by `activation_function`.
    pub fn activation(&self) -> candle::Result<Activation> {
        match self.activation_function.as_str() {
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            "gelu" => Ok(Activation::GeluErf),
            other => candle::bail!(
                "config key `activation_function` = {other:?} is not supported (gelu_new, gelu_pytorch_tanh, gelu)"
            ),
        }
    }

    /// Inner width of the MLP.
    pub fn inner_dim(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Floating-point operations of the blocks on one sequence of `tokens` tokens: 2 per
    /// multiply-add of every matrix product (per block: QKV `3d²`, output `d²` and MLP `2·d·inner`
    /// per token, QKᵀ and AV `t·d` each); element-wise work, norms and softmaxes left out.
    pub fn blocks_flops(&self, tokens: usize) -> f64 {
        let (t, d, l) = (tokens as f64, self.n_embd as f64, self.n_layer as f64);
        let inner = self.inner_dim() as f64;
        let per_block = 2.0 * t * (4.0 * d * d + 2.0 * d * inner) + 2.0 * 2.0 * t * t * d;
        l * per_block
    }

    /// Floating-point operations of the tied LM head on `tokens` tokens (`d · vocab` multiply-adds
    /// each).
    pub fn head_flops(&self, tokens: usize) -> f64 {
        2.0 * tokens as f64 * self.n_embd as f64 * self.vocab_size as f64
    }

    /// Number of parameters (embeddings included, pad row excluded).
    pub fn n_params(&self) -> usize {
        let (d, f) = (self.n_embd, self.inner_dim());
        let block = 2 * 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d);
        self.vocab_size * d + self.n_positions * d + self.n_layer * block + 2 * d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_openai_parameter_counts() {
        // Published sizes: 124,439,808 / 354,823,168 / 774,030,080 / 1,557,611,200.
        assert_eq!(Gpt2Config::gpt2_small().n_params(), 124_439_808);
        assert_eq!(Gpt2Config::gpt2_medium().n_params(), 354_823_168);
        assert_eq!(Gpt2Config::gpt2_large().n_params(), 774_030_080);
        assert_eq!(Gpt2Config::gpt2_xl().n_params(), 1_557_611_200);
    }

    #[test]
    fn hf_json_round_trips() {
        let c = Gpt2Config::gpt2_medium();
        assert_eq!(Gpt2Config::from_json_str(&c.to_hf_json()).unwrap(), c);
    }

    #[test]
    fn unknown_key_is_an_error() {
        let mut v: serde_json::Value =
            serde_json::from_str(&Gpt2Config::tiny().to_hf_json()).unwrap();
        v["n_embed"] = 64.into();
        let err = Gpt2Config::from_json_str(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown config key `n_embed`"), "{err}");
    }

    #[test]
    fn unsupported_option_is_an_error() {
        let mut v: serde_json::Value =
            serde_json::from_str(&Gpt2Config::tiny().to_hf_json()).unwrap();
        v["scale_attn_by_inverse_layer_idx"] = true.into();
        let err = Gpt2Config::from_json_str(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("scale_attn_by_inverse_layer_idx"), "{err}");
        v["scale_attn_by_inverse_layer_idx"] = false.into();
        v["activation_function"] = "relu".into();
        let err = Gpt2Config::from_json_str(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("activation_function"), "{err}");
    }

    #[test]
    fn heads_must_divide_width() {
        let c = Gpt2Config {
            n_head: 5,
            ..Gpt2Config::tiny()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not divisible"));
    }
}
