//! Hugging Face Hub file resolution for ponder, with an offline mode.
//!
//! `hf-hub` does not honour `HF_HUB_OFFLINE` by itself. [`Hub::get`] implements it the way
//! transformers does: offline, a file comes from the local cache or the call fails with a message
//! that says how to get it; online, a cached file is returned without touching the network and a
//! missing one is downloaded into the standard cache layout
//! (`<cache>/models--ORG--NAME/{refs/main, blobs/, snapshots/<sha>/FILE}`).
//!
//! Library code never reads the environment: binaries call [`HubOptions::from_env`] and pass the
//! options down.

use std::path::{Path, PathBuf};

/// Where and how to look up Hub files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubOptions {
    /// Only read the local cache; never touch the network.
    pub offline: bool,
    /// The hub cache folder (`$HF_HUB_CACHE`, or `$HF_HOME/hub`, or `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// The Hub endpoint (`$HF_ENDPOINT`); `None` means huggingface.co.
    pub endpoint: Option<String>,
    /// An access token for gated repositories (`$HF_TOKEN`).
    pub token: Option<String>,
}

/// Errors from Hub lookups.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Offline mode is on and the file is not in the cache.
    #[error(
        "{repo}: {file} is not in the Hugging Face cache at {cache} and offline mode is on \
         (HF_HUB_OFFLINE=1 or --offline); on a machine with network run \
         `huggingface-cli download {repo} {file}` and copy its cache folder here, \
         or pass a local folder that holds the file"
    )]
    NotCached {
        /// The repository id.
        repo: String,
        /// The file inside the repository.
        file: String,
        /// The cache folder that was searched.
        cache: PathBuf,
    },
    /// The download failed (no network, unknown repository, missing file, gated repository).
    #[error(
        "{repo}: could not download {file} from the Hugging Face Hub ({source}); check the id, \
         or without network set HF_HUB_OFFLINE=1 (or --offline) to use the cache at {cache}"
    )]
    Download {
        /// The repository id.
        repo: String,
        /// The file inside the repository.
        file: String,
        /// The cache folder.
        cache: PathBuf,
        /// What hf-hub reported.
        #[source]
        source: Box<hf_hub::api::sync::ApiError>,
    },
}

impl HubOptions {
    /// Options for the given cache folder, online, with no token.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            offline: false,
            cache_dir: cache_dir.into(),
            endpoint: None,
            token: None,
        }
    }

    /// Options read from the environment as transformers reads them: `HF_HUB_OFFLINE`
    /// (`1`, `true`, `yes` or `on`), `HF_HUB_CACHE`, `HF_HOME`, `HF_ENDPOINT` and `HF_TOKEN`.
    /// Only binaries should call this.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let cache_dir = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            let home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
                let user = var("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("."));
                user.join(".cache").join("huggingface")
            });
            home.join("hub")
        });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| is_truthy(&v));
        Self {
            offline,
            cache_dir,
            endpoint: var("HF_ENDPOINT"),
            token: var("HF_TOKEN"),
        }
    }
}

/// Whether an environment value means "on", as `huggingface_hub` parses booleans.
pub fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The full repository id for the short GPT-2 names (`gpt2` → `openai-community/gpt2`); other ids
/// are returned as they are.
pub fn canonical_repo(id: &str) -> String {
    match id {
        "gpt2" | "gpt2-medium" | "gpt2-large" | "gpt2-xl" | "distilgpt2" => {
            format!("openai-community/{id}")
        }
        other => other.to_string(),
    }
}

/// A Hub client bound to one set of options.
#[derive(Debug, Clone)]
pub struct Hub {
    options: HubOptions,
}

impl Hub {
    /// A client with these options.
    pub fn new(options: HubOptions) -> Self {
        Self { options }
    }

    /// The options in force.
    pub fn options(&self) -> &HubOptions {
        &self.options
    }

    /// The cached copy of `file` in model repository `repo`, if there is one. Short GPT-2 names
    /// are looked up under both their legacy and their `openai-community/` folder.
    pub fn cached(&self, repo: &str, file: &str) -> Option<PathBuf> {
        self.cached_in(RepoKind::Model, repo, file)
    }

    fn cached_in(&self, kind: RepoKind, repo: &str, file: &str) -> Option<PathBuf> {
        let cache = hf_hub::Cache::new(self.options.cache_dir.clone());
        let ids = match kind {
            RepoKind::Model => vec![repo.to_string(), canonical_repo(repo)],
            RepoKind::Dataset => vec![repo.to_string()],
        };
        ids.into_iter().find_map(|id| match kind {
            RepoKind::Model => cache.model(id).get(file),
            RepoKind::Dataset => cache.dataset(id).get(file),
        })
    }

    /// The local path of `file` in model repository `repo`: from the cache, or downloaded into
    /// it unless offline.
    pub fn get(&self, repo: &str, file: &str) -> Result<PathBuf, HubError> {
        self.get_in(RepoKind::Model, repo, file)
    }

    /// The local path of `file` in dataset repository `repo` (e.g. a `.jsonl` shard of a code
    /// dataset), from the cache or downloaded unless offline.
    pub fn get_dataset(&self, repo: &str, file: &str) -> Result<PathBuf, HubError> {
        self.get_in(RepoKind::Dataset, repo, file)
    }

    fn get_in(&self, kind: RepoKind, repo: &str, file: &str) -> Result<PathBuf, HubError> {
        if let Some(path) = self.cached_in(kind, repo, file) {
            return Ok(path);
        }
        let repo_id = match kind {
            RepoKind::Model => canonical_repo(repo),
            RepoKind::Dataset => repo.to_string(),
        };
        if self.options.offline {
            return Err(HubError::NotCached {
                repo: repo_id,
                file: file.to_string(),
                cache: self.options.cache_dir.clone(),
            });
        }
        let download_err = |source| HubError::Download {
            repo: repo_id.clone(),
            file: file.to_string(),
            cache: self.options.cache_dir.clone(),
            source: Box::new(source),
        };
        let mut builder = hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(
            self.options.cache_dir.clone(),
        ))
        .with_token(self.options.token.clone())
        .with_retries(0);
        if let Some(endpoint) = &self.options.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        let api = builder.build().map_err(download_err)?;
        let handle = match kind {
            RepoKind::Model => api.model(repo_id.clone()),
            RepoKind::Dataset => api.dataset(repo_id.clone()),
        };
        handle.get(file).map_err(download_err)
    }
}

/// Model or dataset repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoKind {
    /// `models--ORG--NAME` in the cache.
    Model,
    /// `datasets--ORG--NAME` in the cache.
    Dataset,
}

/// Writes a file into the cache layout by hand, as a download would: used by tests and by tools
/// that import files from elsewhere. Returns the snapshot path of the file.
pub fn insert_into_cache(
    cache_dir: &Path,
    repo: &str,
    commit: &str,
    file: &str,
    bytes: &[u8],
) -> std::io::Result<PathBuf> {
    insert_repo_file(cache_dir, RepoKind::Model, repo, commit, file, bytes)
}

/// [`insert_into_cache`] for any repository kind.
pub fn insert_repo_file(
    cache_dir: &Path,
    kind: RepoKind,
    repo: &str,
    commit: &str,
    file: &str,
    bytes: &[u8],
) -> std::io::Result<PathBuf> {
    let prefix = match kind {
        RepoKind::Model => "models",
        RepoKind::Dataset => "datasets",
    };
    let folder = cache_dir.join(format!("{prefix}--{}", repo.replace('/', "--")));
    let snapshot = folder.join("snapshots").join(commit);
    std::fs::create_dir_all(folder.join("refs"))?;
    std::fs::create_dir_all(&snapshot)?;
    std::fs::write(folder.join("refs").join("main"), commit)?;
    let path = snapshot.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, bytes)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline(dir: &Path) -> Hub {
        Hub::new(HubOptions {
            offline: true,
            ..HubOptions::new(dir)
        })
    }

    #[test]
    fn offline_reads_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let written = insert_into_cache(
            dir.path(),
            "openai-community/gpt2",
            "abc123",
            "config.json",
            b"{}",
        )
        .unwrap();
        let hub = offline(dir.path());
        assert_eq!(
            hub.get("openai-community/gpt2", "config.json").unwrap(),
            written
        );
        // The short name resolves to the same cached file.
        assert_eq!(hub.get("gpt2", "config.json").unwrap(), written);
    }

    #[test]
    fn offline_miss_says_how_to_get_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = offline(dir.path())
            .get("gpt2-medium", "model.safetensors")
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, HubError::NotCached { .. }));
        assert!(
            msg.contains("openai-community/gpt2-medium: model.safetensors is not in"),
            "{msg}"
        );
        assert!(msg.contains("huggingface-cli download"), "{msg}");
    }

    #[test]
    fn datasets_have_their_own_cache_folder() {
        let dir = tempfile::tempdir().unwrap();
        let written = insert_repo_file(
            dir.path(),
            RepoKind::Dataset,
            "org/code",
            "c0ffee",
            "data/py/0.jsonl",
            b"{}",
        )
        .unwrap();
        let hub = offline(dir.path());
        assert_eq!(
            hub.get_dataset("org/code", "data/py/0.jsonl").unwrap(),
            written
        );
        assert!(
            hub.get("org/code", "data/py/0.jsonl").is_err(),
            "a dataset is not a model"
        );
    }

    #[test]
    fn truthy_values() {
        for v in ["1", "true", "YES", " on "] {
            assert!(is_truthy(v), "{v}");
        }
        for v in ["0", "false", "", "no"] {
            assert!(!is_truthy(v), "{v}");
        }
    }
}
