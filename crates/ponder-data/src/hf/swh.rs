//! File contents of The Stack v2 from Software Heritage: each blob is fetched anonymously with
//! an HTTPS GET of `{base_url}/content/{blob_id}` (by default the public S3 bucket
//! `softwareheritage`, as the original's unsigned boto3 client in us-east-1 reads it), gunzipped,
//! and cached under `<cache_dir>/swh/<blob_id>` (written atomically), so a rerun needs no
//! network. Offline, only the cache is read.
//!
//! A failed fetch is never an error: it becomes a [`SkipReason`] (download failed, corrupt gzip,
//! not cached while offline) that the corpus counts, like the original, which drops the file.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use crate::corpus::SkipReason;
use crate::error::{Error, Result};

/// The public S3 endpoint of Software Heritage's `softwareheritage` bucket.
pub const SWH_S3_URL: &str = "https://softwareheritage.s3.amazonaws.com";

/// The largest compressed body read (bytes); larger ones count as failed downloads.
const MAX_COMPRESSED_BYTES: u64 = 64 << 20;
/// The largest decompressed blob kept (bytes); larger ones count as corrupt.
const MAX_BLOB_BYTES: u64 = 256 << 20;

/// Where and how to fetch blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwhOptions {
    /// The base URL; a blob is `{base_url}/content/{blob_id}` ([`SWH_S3_URL`] by default).
    pub base_url: String,
    /// The folder whose `swh/` subfolder caches the decompressed blobs.
    pub cache_dir: PathBuf,
    /// Read only the cache (blobs not in it are skipped as [`SkipReason::NotCached`]).
    pub offline: bool,
    /// How many downloads run at once (at least 1).
    pub threads: usize,
    /// The connect timeout (5 s in the original).
    pub connect_timeout: Duration,
    /// The read timeout (10 s in the original).
    pub read_timeout: Duration,
}

impl SwhOptions {
    /// The original's settings: the S3 bucket, 16 threads, 5 s to connect, 10 s to read.
    pub fn new(cache_dir: impl Into<PathBuf>, offline: bool) -> Self {
        Self {
            base_url: SWH_S3_URL.into(),
            cache_dir: cache_dir.into(),
            offline,
            threads: 16,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(10),
        }
    }

    /// The cache file of `blob_id`.
    pub fn cache_path(&self, blob_id: &str) -> PathBuf {
        self.cache_dir.join("swh").join(blob_id)
    }
}

/// The decompressed bytes of each blob, in the order given (each `Err` says why it was
/// skipped), fetched by at most `opts.threads` threads. Fails only for a blob id that is not a
/// plain name (it would escape the cache folder) or when the thread pool cannot start.
pub fn fetch_blobs(
    blob_ids: &[String],
    opts: &SwhOptions,
) -> Result<Vec<std::result::Result<Vec<u8>, SkipReason>>> {
    use rayon::prelude::*;
    if let Some(bad) = blob_ids.iter().find(|id| !is_plain_id(id)) {
        return Err(Error::BadDataset {
            path: opts.cache_dir.join("swh"),
            reason: format!("blob id {bad:?} is not a plain hexadecimal or alphanumeric name"),
        });
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(opts.read_timeout))
        .timeout_recv_body(Some(opts.read_timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .build()
        .map_err(|e| Error::Windows(format!("cannot start download threads ({e})")))?;
    let results: Vec<_> = pool.install(|| {
        blob_ids
            .par_iter()
            .map(|id| fetch_one(&agent, id, opts))
            .collect()
    });
    let n_uncached = results
        .iter()
        .filter(|r| matches!(r, Err(SkipReason::NotCached)))
        .count();
    if n_uncached > 0 {
        tracing::warn!(
            "offline: {n_uncached} of {} Stack v2 blobs are not cached under {} and are skipped",
            blob_ids.len(),
            opts.cache_dir.join("swh").display()
        );
    }
    Ok(results)
}

/// One blob: from the cache, else (online) downloaded, gunzipped and cached.
fn fetch_one(
    agent: &ureq::Agent,
    blob_id: &str,
    opts: &SwhOptions,
) -> std::result::Result<Vec<u8>, SkipReason> {
    let cached = opts.cache_path(blob_id);
    if let Ok(bytes) = std::fs::read(&cached) {
        return Ok(bytes);
    }
    if opts.offline {
        return Err(SkipReason::NotCached);
    }
    let url = format!("{}/content/{blob_id}", opts.base_url.trim_end_matches('/'));
    let body = download(agent, &url).map_err(|why| {
        tracing::debug!("{url}: {why}");
        SkipReason::DownloadFailed
    })?;
    let bytes = gunzip(&body.bytes, body.already_decoded).map_err(|why| {
        tracing::debug!("{url}: {why}");
        SkipReason::CorruptGzip
    })?;
    if let Err(e) = ponder_base::write_atomic(&cached, &bytes) {
        tracing::warn!("{}: cannot cache a Stack v2 blob ({e})", cached.display());
    }
    Ok(bytes)
}

/// A response body, and whether the client already undid a `Content-Encoding: gzip`.
struct Body {
    bytes: Vec<u8>,
    already_decoded: bool,
}

fn download(agent: &ureq::Agent, url: &str) -> std::result::Result<Body, String> {
    let mut response = agent
        .get(url)
        .header("Accept-Encoding", "identity")
        .call()
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    let already_decoded = response
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_COMPRESSED_BYTES)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok(Body {
        bytes,
        already_decoded,
    })
}

/// The gunzipped `bytes` (the objects are stored gzipped). When the server declared the
/// encoding, the HTTP client has already undone it and plain bytes pass through.
fn gunzip(bytes: &[u8], already_decoded: bool) -> std::result::Result<Vec<u8>, String> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return if already_decoded {
            Ok(bytes.to_vec())
        } else {
            Err("the body is not gzip (no gzip header)".into())
        };
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(MAX_BLOB_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("corrupt gzip ({e})"))?;
    if out.len() as u64 > MAX_BLOB_BYTES {
        return Err(format!(
            "more than {MAX_BLOB_BYTES} bytes once decompressed"
        ));
    }
    Ok(out)
}

/// Whether `id` is safe as a file name and URL segment (Software Heritage ids are hexadecimal).
fn is_plain_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_undone_and_garbage_is_refused() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"print(1)\n").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, false).unwrap(), b"print(1)\n");
        assert_eq!(gunzip(b"print(1)\n", true).unwrap(), b"print(1)\n");
        assert!(gunzip(b"print(1)\n", false)
            .unwrap_err()
            .contains("not gzip"));
        let mut cut = gz.clone();
        cut.truncate(gz.len() - 6);
        assert!(gunzip(&cut, false).unwrap_err().contains("corrupt gzip"));
    }

    #[test]
    fn ids_that_could_escape_the_cache_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SwhOptions::new(dir.path(), true);
        let err = fetch_blobs(&["../etc".to_string()], &opts).unwrap_err();
        assert!(err.to_string().contains("blob id \"../etc\""), "{err}");
        let ok = fetch_blobs(&["abc123".to_string()], &opts).unwrap();
        assert_eq!(ok, [Err(SkipReason::NotCached)]);
    }
}
