//! The Stack v2 ids (`fixtures/stack_v2_ids.parquet`, written by `fixtures/gen_stack_v2.py`)
//! with contents from a local HTTP server standing in for Software Heritage's S3 bucket: files
//! kept in stream order, `skip` and `max_files`, skip counts by reason, the blob cache read
//! offline, and the error for a file without a `files` column. Nothing leaves the machine.
#![cfg(feature = "parquet")]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ponder_data::hf::stack_v2::{
    read_ids, stack_v2_corpus_with, stack_v2_file_corpus, StackV2Slice, STACK_V2_IDS_REPO,
};
use ponder_data::hf::swh::SwhOptions;
use ponder_data::{Corpus, Language, ScanOptions, SkipReason};

use common::{fixture, offline_hub_with};

/// A one-thread HTTP/1.1 server serving `stack_v2_blobs.json` under `/content/<blob_id>`.
struct Server {
    url: String,
    requested: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let text = std::fs::read_to_string(fixture("stack_v2_blobs.json")).unwrap();
        let blobs: serde_json::Value = serde_json::from_str(&text).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requested = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (req, st) = (requested.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    serve(stream, &blobs, &req);
                }
            }
        });
        Server {
            url: format!("http://{addr}"),
            requested,
            stop,
            addr,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<String> {
        let mut r = self.requested.lock().unwrap().clone();
        r.sort();
        r
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

fn serve(mut stream: TcpStream, blobs: &serde_json::Value, requested: &Mutex<Vec<String>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let id = target.strip_prefix("/content/").unwrap_or("");
    requested.lock().unwrap().push(id.to_string());
    let (status, body) = match &blobs[id] {
        b if b["status"] == 404 => ("404 Not Found", b"<Error>NoSuchKey</Error>".to_vec()),
        b if b["corrupt"] == true => ("200 OK", vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4]),
        b if b["content"].is_string() => ("200 OK", gzip(b["content"].as_str().unwrap())),
        _ => ("404 Not Found", Vec::new()),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(&body);
}

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

fn swh(server: &Server, cache: &Path, offline: bool) -> SwhOptions {
    SwhOptions {
        base_url: server.url.clone(),
        threads: 4,
        ..SwhOptions::new(cache, offline)
    }
}

fn read(c: &Corpus) -> Vec<(String, String)> {
    let texts = c.read_all().unwrap();
    c.files
        .iter()
        .map(|f| f.rel_path.clone())
        .zip(texts)
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn files_of_the_language_are_fetched_in_stream_order_and_cached() {
    let mut server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let ids = fixture("stack_v2_ids.parquet");
    let scan = ScanOptions::standard();
    let all = StackV2Slice::default();
    let c = stack_v2_file_corpus(
        "s",
        &ids,
        Language::Python,
        all,
        &scan,
        &swh(&server, cache.path(), false),
    )
    .unwrap();
    let kept = [
        ("00000001/src/app.py", "def main():\n    return 0\n"),
        ("00000005/pkg/core.py", "class Core:\n    pass\n"),
        ("00000007/tools/run.py", "print('run \u{2713}')\n"),
    ];
    assert_eq!(read(&c), pairs(&kept));
    let expected = BTreeMap::from([
        (SkipReason::Empty, 1),
        (SkipReason::Encoding, 1),
        (SkipReason::DownloadFailed, 1),
        (SkipReason::CorruptGzip, 1),
    ]);
    assert_eq!(c.skipped, expected);
    // The ISO-8859-1 file was never requested; the six others once each.
    let listed = read_ids(&ids, Language::Python, all).unwrap();
    assert_eq!(listed.len(), 7);
    assert_eq!(listed[2].src_encoding.as_deref(), Some("ISO-8859-1"));
    let mut fetched: Vec<String> = listed
        .iter()
        .filter(|f| f.index != 3)
        .map(|f| f.blob_id.clone())
        .collect();
    fetched.sort();
    assert_eq!(server.requests(), fetched);
    assert_eq!(listed[6].row, 5);

    // Offline with the server gone: the cache holds every blob that was fetched whole.
    server.shut_down();
    let offline = swh(&server, cache.path(), true);
    let c = stack_v2_file_corpus("s", &ids, Language::Python, all, &scan, &offline).unwrap();
    assert_eq!(read(&c), pairs(&kept));
    let expected = BTreeMap::from([
        (SkipReason::Empty, 1),
        (SkipReason::Encoding, 1),
        (SkipReason::NotCached, 2),
    ]);
    assert_eq!(c.skipped, expected);
}

#[test]
fn skip_and_max_files_count_files_of_the_language_before_any_download() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let ids = fixture("stack_v2_ids.parquet");
    let slice = StackV2Slice {
        skip: 2,
        max_files: Some(3),
    };
    let opts = swh(&server, cache.path(), false);
    let scan = ScanOptions::standard();
    let c = stack_v2_file_corpus("s", &ids, Language::Python, slice, &scan, &opts).unwrap();
    assert_eq!(
        read(&c),
        pairs(&[("00000005/pkg/core.py", "class Core:\n    pass\n")])
    );
    let expected = BTreeMap::from([(SkipReason::Encoding, 1), (SkipReason::CorruptGzip, 1)]);
    assert_eq!(c.skipped, expected);
    assert_eq!(server.requests().len(), 2);
    let js = stack_v2_file_corpus("s", &ids, Language::JavaScript, slice, &scan, &opts).unwrap();
    assert!(js.files.is_empty() && js.skipped.is_empty(), "{js:?}");
    let go = StackV2Slice::default();
    let go = stack_v2_file_corpus("s", &ids, Language::Go, go, &scan, &opts).unwrap();
    assert_eq!(read(&go), pairs(&[("00000001/main.go", "package main\n")]));
}

#[test]
fn a_spec_goes_through_the_hf_cache() {
    let server = Server::start();
    let cache = tempfile::tempdir().unwrap();
    let file = "data/sample.parquet";
    let hub = offline_hub_with(
        cache.path(),
        STACK_V2_IDS_REPO,
        file,
        "stack_v2_ids.parquet",
    );
    let scan = ScanOptions::standard();
    let opts = swh(&server, cache.path(), false);
    let spec = format!("hf-stack-v2:{file}?max_files=1");
    let c = stack_v2_corpus_with(&hub, &spec, Language::Python, &scan, &opts).unwrap();
    assert_eq!(c.name, spec);
    assert_eq!(read(&c).len(), 1);
    assert!(cache
        .path()
        .join("swh")
        .join(server.requests()[0].as_str())
        .is_file());
    let err = stack_v2_corpus_with(
        &hub,
        "hf-stack-v2:x.parquet",
        Language::Python,
        &scan,
        &opts,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("x.parquet is not in the Hugging Face cache"),
        "{err}"
    );
    let err = stack_v2_corpus_with(&hub, "hf-stack-v2:x?top=1", Language::Python, &scan, &opts)
        .unwrap_err();
    assert!(err.to_string().contains("?skip=N&max_files=M"), "{err}");
}

#[test]
fn a_file_without_files_is_an_error_listing_its_columns() {
    let path = fixture("hf_rows_snappy.parquet");
    let err = read_ids(&path, Language::Python, StackV2Slice::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("hf_rows_snappy.parquet"), "{msg}");
    assert!(
        msg.contains("no column `files` (the file's columns are `path`, `content`, `lang`)"),
        "{msg}"
    );
    let err = read_ids(
        &fixture("nope.parquet"),
        Language::Python,
        StackV2Slice::default(),
    );
    assert!(err.unwrap_err().to_string().contains("nope.parquet"));
}
