//! `cargo xtask gpu-check`: the GPU path checked in one command, in two halves. A GPU machine
//! lent to this project has CUDA's driver and PyTorch but no Rust toolchain and no network, and
//! at most 64 MiB travel to it; so here the CUDA build is made (nvcc from PyPI's NVIDIA wheels,
//! `CUDA_COMPUTE_CAP=90`), stripped and packed into [`PACK`], and there
//! `xtask/scripts/gpu-check.sh` (packed beside the binaries) runs them and writes one JSON file.
//! `--dry-run` prints both halves without running anything, so CI keeps the plan from rotting.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The check's folder, relative to the workspace root.
const BASE: &str = "target/gpu-check";

/// Where the pack is written, relative to the workspace root.
pub const PACK: &str = "target/gpu-check/pack";

/// A folder or file under [`BASE`].
fn under(name: &str) -> String {
    format!("{BASE}/{name}")
}

/// The most that may travel to the GPU machine.
const LIMIT_BYTES: u64 = 64 << 20;

/// The NVIDIA wheels that compile and link the CUDA build: the compiler and the libraries
/// `cudarc` links against, of CUDA 13.0, the version of the lent machines' driver (the PTX of a
/// newer nvcc would not load on an older driver).
const WHEELS: &[&str] = &[
    "nvidia-cuda-nvcc==13.0.88",
    "nvidia-nvvm==13.0.88",
    "nvidia-cuda-crt==13.0.88",
    "nvidia-cuda-runtime==13.0.96",
    "nvidia-cuda-cccl==13.0.85",
    "nvidia-cuda-nvrtc==13.0.88",
    "nvidia-cublas==13.0.2.14",
    "nvidia-curand==10.4.0.35",
];

/// The test binaries that run device code on the GPU: (package, test target).
pub const DEVICE_TESTS: &[(&str, &str)] = &[
    ("ponder-gpt2", "hf_parity"),
    ("ponder-lora", "causality"),
    ("ponder-lora", "identities"),
    ("ponder-train", "precision"),
    ("ponder-train", "fast_precision"),
];

/// One command of the check.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// What it is for.
    pub what: String,
    /// The program and its arguments.
    pub command: Vec<String>,
}

fn action(what: &str, command: &[&str]) -> Action {
    Action {
        what: what.into(),
        command: command.iter().map(|s| s.to_string()).collect(),
    }
}

/// The build half, in order: each action as it runs (`$CUDA_ROOT` stands for the wheels'
/// `nvidia/cu13` folder, found once they are installed).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildPlan {
    /// The Python environment for NVIDIA's wheels.
    pub venv: Action,
    /// The wheels.
    pub wheels: Action,
    /// The driver's link stub.
    pub stub: Action,
    /// `ponder` with CUDA.
    pub ponder: Action,
    /// The device tests with CUDA.
    pub tests: Action,
    /// Stripping, shown for `ponder` (each test binary goes the same way into `tests/`).
    pub strip: Action,
    /// The pack.
    pub pack: Action,
}

impl BuildPlan {
    /// The actions in the order they run.
    pub fn all(&self) -> [&Action; 7] {
        [
            &self.venv,
            &self.wheels,
            &self.stub,
            &self.ponder,
            &self.tests,
            &self.strip,
            &self.pack,
        ]
    }
}

/// The build half, run here from the workspace root.
pub fn build_plan() -> BuildPlan {
    let venv = under("venv");
    let mut pip = vec![format!("{venv}/bin/pip"), "install".into(), "-q".into()];
    pip.extend(WHEELS.iter().map(|w| w.to_string()));
    let mut tests = vec![
        "cargo",
        "test",
        "--release",
        "--no-run",
        "--message-format=json",
    ];
    for (package, target) in DEVICE_TESTS {
        tests.extend(["-p", package, "--test", target]);
    }
    tests.extend([
        "--features",
        "ponder-gpt2/cuda,ponder-lora/cuda,ponder-train/cuda",
    ]);
    let stage = under("stage");
    BuildPlan {
        venv: action(
            "a Python environment for NVIDIA's wheels",
            &["python3", "-m", "venv", &venv],
        ),
        wheels: Action {
            what: "nvcc, NVRTC, cuBLAS and cuRAND from PyPI".into(),
            command: pip,
        },
        stub: action(
            "a link stub of the driver (libcuda.so, every cu* function cudarc declares) and unversioned links to the wheels' libraries, for the linker only",
            &[
                "cc",
                "-shared",
                "-fPIC",
                "-Wl,-soname,libcuda.so.1",
                "-o",
                "$CUDA_ROOT/lib/libcuda.so",
                &under("libcuda-stub.c"),
            ],
        ),
        ponder: action(
            "the CUDA build of ponder (CUDA_COMPUTE_CAP=90, nvcc from the wheels)",
            &[
                "cargo",
                "build",
                "--release",
                "-p",
                "ponder-cli",
                "--features",
                "cuda",
            ],
        ),
        tests: action("the device tests, built with CUDA", &tests),
        strip: action(
            "strip the binaries into the stage (ponder into bin/, each test into tests/)",
            &["strip", "-o", &format!("{stage}/bin/ponder"), &under("build/release/ponder")],
        ),
        pack: action(
            "pack them as binaries.tar.xz (XZ_OPT=\"-6 -T0\"), with gpu-check.sh beside it",
            &[
                "tar",
                "-cJf",
                &format!("{PACK}/binaries.tar.xz"),
                "-C",
                &stage,
                "bin",
                "tests",
            ],
        ),
    }
}

/// The GPU half: what to run there.
pub fn gpu_plan() -> Vec<Action> {
    vec![action(
        "on the GPU machine, from the checkout with the pack carried: tests, bench, CPU-vs-GPU training, a comparison pass → OUT/gpu-check.json",
        &["bash", &format!("{PACK}/gpu-check.sh"), "OUT"],
    )]
}

/// The environment of the CUDA build: nvcc and its headers from the wheels' environment.
fn cuda_env(root: &Path) -> Result<Vec<(String, String)>> {
    let lib = root.join(under("venv/lib"));
    let site = std::fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .flatten()
        .map(|e| e.path().join("site-packages/nvidia/cu13"))
        .find(|p| p.is_dir())
        .with_context(|| format!("nvidia/cu13 not found under {}", lib.display()))?;
    let path = format!(
        "{}:{}",
        site.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Ok(vec![
        ("PATH".into(), path),
        ("CUDA_ROOT".into(), site.display().to_string()),
        ("CUDA_PATH".into(), site.display().to_string()),
        ("CUDA_COMPUTE_CAP".into(), "90".into()),
        ("CARGO_TARGET_DIR".into(), under("build")),
        (
            "LIBRARY_PATH".into(),
            site.join("lib").display().to_string(),
        ),
    ])
}

/// The driver functions `cudarc` declares, read from its source (found with `cargo metadata`).
fn driver_functions(root: &Path) -> Result<Vec<String>> {
    let meta = Command::new("cargo")
        .current_dir(root)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--features",
            "ponder-cli/cuda",
        ])
        .output()
        .context("running cargo metadata")?;
    if !meta.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&meta.stderr).trim()
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&meta.stdout).context("reading cargo metadata's output")?;
    let manifest = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "cudarc"))
        .and_then(|p| p["manifest_path"].as_str())
        .context("cudarc is not among the workspace's packages")?;
    let sys = Path::new(manifest).with_file_name("src/driver/sys/mod.rs");
    let text =
        std::fs::read_to_string(&sys).with_context(|| format!("reading {}", sys.display()))?;
    let mut names: Vec<String> = text
        .split("fn ")
        .skip(1)
        .filter_map(|rest| rest.split('(').next())
        .filter(|n| n.starts_with("cu") && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Writes the link stub of the driver into the wheels' `lib` (a shared object named as the
/// driver, whose functions are never called: at run time the GPU machine's driver takes its
/// place) with `stub`'s command, and unversioned links to the wheels' libraries there.
fn link_stubs(
    root: &Path,
    stub: &Action,
    env: &[(String, String)],
    cuda_root: &Path,
) -> Result<()> {
    let names = driver_functions(root)?;
    let source = root.join(under("libcuda-stub.c"));
    let body: String = names
        .iter()
        .map(|n| format!("int {n}(void) {{ return 999; }}\n"))
        .collect();
    std::fs::write(&source, body).with_context(|| format!("writing {}", source.display()))?;
    let root_text = cuda_root.display().to_string();
    let command = stub
        .command
        .iter()
        .map(|a| a.replace("$CUDA_ROOT", &root_text))
        .collect();
    run_action(
        root,
        &Action {
            what: stub.what.clone(),
            command,
        },
        env,
    )?;
    let lib = cuda_root.join("lib");
    for (link, target) in [
        ("libcublas.so", "libcublas.so.13"),
        ("libcublasLt.so", "libcublasLt.so.13"),
        ("libcurand.so", "libcurand.so.10"),
        ("libnvrtc.so", "libnvrtc.so.13"),
        ("libcudart.so", "libcudart.so.13"),
    ] {
        let path = lib.join(link);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(target, &path)
            .with_context(|| format!("linking {}", path.display()))?;
    }
    Ok(())
}

/// Runs `a` from `root` with `env`; its stdout.
fn run_action(root: &Path, a: &Action, env: &[(String, String)]) -> Result<String> {
    println!("gpu-check: {}", a.what);
    let out = Command::new(&a.command[0])
        .args(&a.command[1..])
        .current_dir(root)
        .envs(env.iter().cloned())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", a.command.join(" ")))?;
    if !out.status.success() {
        bail!("{} failed: {}", a.what, a.command.join(" "));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An empty folder at `path` (whatever was there removed).
fn fresh_dir(path: &Path) -> Result<()> {
    if path.exists() {
        std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}

/// Runs the build half, or prints both halves with `dry_run`.
pub fn run(root: &Path, dry_run: bool) -> Result<()> {
    let (build, gpu) = (build_plan(), gpu_plan());
    if dry_run {
        let here = build.all().map(|a| ("here", a));
        for (half, a) in here.into_iter().chain(gpu.iter().map(|a| ("there", a))) {
            println!("[{half}] {}\n    {}", a.what, a.command.join(" "));
        }
        return Ok(());
    }
    run_action(root, &build.venv, &[])?;
    run_action(root, &build.wheels, &[])?;
    let env = cuda_env(root)?;
    let cuda_root = env
        .iter()
        .find(|(k, _)| k == "CUDA_ROOT")
        .map(|(_, v)| PathBuf::from(v))
        .context("CUDA_ROOT")?;
    link_stubs(root, &build.stub, &env, &cuda_root)?;
    run_action(root, &build.ponder, &env)?;
    let messages = run_action(root, &build.tests, &env)?;
    let pack = root.join(PACK);
    let stage = root.join(under("stage"));
    fresh_dir(&pack)?;
    fresh_dir(&stage)?;
    let mut binaries: Vec<(PathBuf, String)> = vec![(
        root.join(under("build/release/ponder")),
        "bin/ponder".into(),
    )];
    for line in messages.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = v["target"]["name"].as_str().unwrap_or_default();
        if let Some(exe) = v["executable"].as_str() {
            if DEVICE_TESTS.iter().any(|(_, t)| *t == name) {
                binaries.push((PathBuf::from(exe), format!("tests/{name}")));
            }
        }
    }
    if binaries.len() != DEVICE_TESTS.len() + 1 {
        bail!(
            "expected ponder and {} test binaries, built {}",
            DEVICE_TESTS.len(),
            binaries.len()
        );
    }
    for sub in ["bin", "tests"] {
        fresh_dir(&stage.join(sub))?;
    }
    // The stripped binaries are about 300 MiB, mostly Candle and its kernels; xz takes them
    // under the limit.
    for (from, to) in &binaries {
        let strip = Action {
            what: format!("strip {to}"),
            command: vec![
                "strip".into(),
                "-o".into(),
                stage.join(to).display().to_string(),
                from.display().to_string(),
            ],
        };
        run_action(root, &strip, &[])?;
    }
    run_action(root, &build.pack, &[("XZ_OPT".into(), "-6 -T0".into())])?;
    let script = root.join("xtask/scripts/gpu-check.sh");
    std::fs::copy(&script, pack.join("gpu-check.sh"))
        .with_context(|| format!("copying {}", script.display()))?;
    std::fs::write(pack.join("built-in"), root.display().to_string())
        .with_context(|| format!("writing {}", pack.join("built-in").display()))?;
    let total: u64 = std::fs::read_dir(&pack)
        .with_context(|| format!("reading {}", pack.display()))?
        .flatten()
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    if total > LIMIT_BYTES {
        bail!(
            "the pack holds {:.1} MiB, more than the {} MiB that may travel to the GPU machine",
            total as f64 / 1048576.0,
            LIMIT_BYTES >> 20
        );
    }
    println!(
        "gpu-check: packed {:.1} MiB into {PACK}; on the GPU machine, carry it and run `{}`",
        total as f64 / 1048576.0,
        gpu[0].command.join(" ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dry_run_names_both_halves_and_the_script_parses() {
        let root = crate::tidy::workspace_root();
        run(&root, true).unwrap();
        let build = build_plan();
        assert!(build
            .ponder
            .command
            .join(" ")
            .contains("-p ponder-cli --features cuda"));
        let tests = build.tests.command.join(" ");
        for (package, target) in DEVICE_TESTS {
            assert!(
                tests.contains(&format!("-p {package} --test {target}")),
                "{tests}"
            );
            let file = root
                .join("crates")
                .join(package)
                .join("tests")
                .join(format!("{target}.rs"));
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                text.contains("test_device!") || text.contains("cuda"),
                "{} runs no device code",
                file.display()
            );
        }
        let script = root.join("xtask/scripts/gpu-check.sh");
        let status = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .status()
            .unwrap();
        assert!(status.success(), "{} does not parse", script.display());
    }
}
