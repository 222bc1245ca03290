//! One `Tokenizer` over (a) a Hugging Face `tokenizer.json` through the `tokenizers` crate and
//! (b) GPT-2's byte-level BPE compiled into the binary (`tiktoken-rs`'s `r50k_base`), so that GPT-2
//! tokenization works offline with ids identical to GPT-2's.
//!
//! `<|endoftext|>` is 50256 in GPT-2's vocabulary; the optional `<|pad|>` gets the next id, 50257,
//! as in the original PonderTTT. Text that spells a special token is encoded as that token, as
//! Hugging Face tokenizers do.

use std::path::Path;

use ponder_hub::Hub;

use crate::error::{Error, Result};

/// The file name of a Hugging Face tokenizer, saved beside a model's weights.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// GPT-2's end-of-text token.
pub const ENDOFTEXT: &str = "<|endoftext|>";
/// The pad token added by PonderTTT.
pub const PAD: &str = "<|pad|>";
/// GPT-2's id for `<|endoftext|>`.
pub const GPT2_ENDOFTEXT_ID: u32 = 50_256;

enum Backend {
    Hf(Box<tokenizers::Tokenizer>),
    Gpt2Bpe(Box<tiktoken_rs::CoreBPE>),
}

/// A tokenizer with a known end-of-text id and an optional pad id.
pub struct Tokenizer {
    backend: Backend,
    eot_id: u32,
    pad_id: Option<u32>,
    vocab_size: usize,
}

impl Tokenizer {
    /// GPT-2's BPE (`r50k_base`), compiled in: no file and no network needed.
    pub fn gpt2() -> Result<Self> {
        let bpe = tiktoken_rs::r50k_base().map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(Self {
            backend: Backend::Gpt2Bpe(Box::new(bpe)),
            eot_id: GPT2_ENDOFTEXT_ID,
            pad_id: None,
            vocab_size: 50_257,
        })
    }

    /// A Hugging Face `tokenizer.json`. Its end-of-text token must be `<|endoftext|>`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let hf = tokenizers::Tokenizer::from_file(path).map_err(|e| Error::TokenizerFile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Self::from_hf(hf).map_err(|message| Error::TokenizerFile {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The `tokenizer.json` of a Hub repository (cache first; see [`ponder_hub::Hub::get`]).
    pub fn from_hub(hub: &Hub, repo: &str) -> Result<Self> {
        Self::from_file(&hub.get(repo, "tokenizer.json")?)
    }

    /// A GPT-2-style byte-level BPE from the classic `vocab.json` (= `encoder.json`) and
    /// `merges.txt` (= `vocab.bpe`) pair, with `<|endoftext|>` as a special token.
    pub fn from_vocab_merges(vocab: &Path, merges: &Path) -> Result<Self> {
        use tokenizers::models::bpe::BPE;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        let bad = |message: String| Error::TokenizerFile {
            path: vocab.to_path_buf(),
            message,
        };
        let (v, m) = (vocab.to_string_lossy(), merges.to_string_lossy());
        let bpe = BPE::from_file(&v, &m)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let mut hf = tokenizers::Tokenizer::new(bpe);
        hf.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        hf.with_decoder(Some(ByteLevel::default()));
        hf.with_post_processor(Some(ByteLevel::default().trim_offsets(false)));
        hf.add_special_tokens([tokenizers::AddedToken::from(ENDOFTEXT, true)])
            .map_err(|e| bad(e.to_string()))?;
        Self::from_hf(hf).map_err(bad)
    }

    /// Trains a byte-level BPE (GPT-2's pre-tokenizer and decoder) with `vocab_size` ids on
    /// `texts`, with `<|endoftext|>` as its first id after the 256 byte tokens' merges are made:
    /// the embedded default's tokenizer. Saved with [`Tokenizer::save`] as a `tokenizer.json`.
    pub fn train_byte_level_bpe(
        texts: &[String],
        vocab_size: usize,
        min_frequency: u64,
    ) -> Result<Self> {
        use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
        use tokenizers::models::TrainerWrapper;
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        if vocab_size < 257 {
            return Err(Error::Tokenizer(format!(
                "vocab_size {vocab_size} must be at least 257 (256 bytes + <|endoftext|>)"
            )));
        }
        let mut hf = tokenizers::Tokenizer::new(BPE::default());
        hf.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        hf.with_decoder(Some(ByteLevel::default()));
        hf.with_post_processor(Some(ByteLevel::default().trim_offsets(false)));
        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(min_frequency)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .special_tokens(vec![tokenizers::AddedToken::from(ENDOFTEXT, true)])
            .build();
        let mut trainer = TrainerWrapper::BpeTrainer(trainer);
        hf.train(&mut trainer, texts.iter())
            .map_err(|e| Error::Tokenizer(format!("BPE training failed: {e}")))?;
        Self::from_hf(hf).map_err(Error::Tokenizer)
    }

    /// A digest of the tokenizer's full definition: equal fingerprints mean equal ids for every
    /// text (used as part of token cache keys).
    pub fn fingerprint(&self) -> String {
        let def = match &self.backend {
            Backend::Hf(hf) => hf.to_string(false).unwrap_or_default(),
            Backend::Gpt2Bpe(_) => "tiktoken-rs 0.12.1 r50k_base".to_string(),
        };
        crate::manifest::sha256_hex(format!("{def}|pad={:?}", self.pad_id).as_bytes())
    }

    fn from_hf(hf: tokenizers::Tokenizer) -> std::result::Result<Self, String> {
        let eot_id = hf
            .token_to_id(ENDOFTEXT)
            .ok_or_else(|| format!("it has no {ENDOFTEXT} token"))?;
        let pad_id = hf.token_to_id(PAD);
        let vocab_size = hf.get_vocab_size(true) - usize::from(pad_id.is_some());
        Ok(Self {
            backend: Backend::Hf(Box::new(hf)),
            eot_id,
            pad_id,
            vocab_size,
        })
    }

    /// Adds `<|pad|>` with the next free id (50257 for GPT-2) if the tokenizer has none.
    pub fn with_pad(mut self) -> Self {
        if self.pad_id.is_none() {
            self.pad_id = Some(self.vocab_size as u32);
        }
        self
    }

    /// Saves a Hugging Face `tokenizer.json` (only for tokenizers loaded through `tokenizers`).
    pub fn save(&self, path: &Path) -> Result<()> {
        match &self.backend {
            Backend::Hf(hf) => hf.save(path, true).map_err(|e| Error::TokenizerFile {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
            Backend::Gpt2Bpe(_) => Err(Error::Tokenizer(
                "the compiled-in GPT-2 BPE has no tokenizer.json form; build one with from_vocab_merges".into(),
            )),
        }
    }

    /// Token ids of `text`; special tokens spelled in the text become their ids. A pad token
    /// spelled in the text is not special for the compiled-in GPT-2 BPE.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.backend {
            Backend::Hf(hf) => Ok(hf
                .encode(text, false)
                .map_err(|e| Error::Tokenizer(e.to_string()))?
                .get_ids()
                .to_vec()),
            Backend::Gpt2Bpe(bpe) => Ok(bpe.encode_with_special_tokens(text)),
        }
    }

    /// The text of `ids`. The pad id decodes to nothing; an unknown id is an error.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&i| Some(i) != self.pad_id)
            .collect();
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.vocab_size) {
            return Err(Error::Tokenizer(format!(
                "id {bad} is outside the vocabulary of {}",
                self.vocab_size
            )));
        }
        match &self.backend {
            Backend::Hf(hf) => hf
                .decode(&ids, false)
                .map_err(|e| Error::Tokenizer(e.to_string())),
            Backend::Gpt2Bpe(bpe) => {
                let bytes = bpe
                    .decode_bytes(&ids)
                    .map_err(|e| Error::Tokenizer(e.to_string()))?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
        }
    }

    /// The id of `<|endoftext|>`.
    pub fn eot_id(&self) -> u32 {
        self.eot_id
    }

    /// The id of `<|pad|>`, if any.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad_id
    }

    /// Number of ids without the pad token (50257 for GPT-2).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Which implementation serves this tokenizer, for logs.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Hf(_) => "tokenizer.json",
            Backend::Gpt2Bpe(_) => "gpt2-bpe (compiled in)",
        }
    }
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind())
            .field("vocab_size", &self.vocab_size)
            .field("eot_id", &self.eot_id)
            .field("pad_id", &self.pad_id)
            .finish()
    }
}
