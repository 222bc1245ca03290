//! `cargo xtask data`: installs the optional out-of-distribution corpora (Go's and the JDK's
//! sources, from Debian packages, and webpack's sources, from npm) into `data/ood/`, where
//! `ponder`'s `go-src` and `jdk-src` sources find them. Without `--yes` it only prints the plan.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One corpus to install.
struct Corpus {
    /// Folder under `data/ood/`.
    name: &'static str,
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
}

const CORPORA: &[Corpus] = &[
    Corpus {
        name: "go",
        fetch: Fetch::Deb("golang-1.19-src"),
        what: "Go 1.19 standard library sources (ponder source `go-src`)",
    },
    Corpus {
        name: "jdk",
        fetch: Fetch::Deb("openjdk-17-source"),
        what: "the JDK 17 src.zip (ponder source `jdk-src`)",
    },
    Corpus {
        name: "webpack",
        fetch: Fetch::Npm("webpack@5.112.2"),
        what:
            "webpack 5.112.2's JavaScript sources (a folder source: data/ood/webpack/package/lib)",
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

/// Prints the plan, and installs it with `yes`.
pub fn run(root: &Path, yes: bool) -> Result<()> {
    let ood = root.join("data").join("ood");
    for c in CORPORA {
        let target = ood.join(c.name);
        let how = match c.fetch {
            Fetch::Deb(p) => format!("apt-get download {p} && dpkg-deb -x"),
            Fetch::Npm(p) => format!("npm pack {p} && tar xzf"),
        };
        if target.exists() {
            println!("{:<8} present   {}", c.name, target.display());
            continue;
        }
        println!(
            "{:<8} {}   {} ({how})",
            c.name,
            if yes { "installing" } else { "missing" },
            c.what
        );
        if !yes {
            continue;
        }
        let work: PathBuf = ood.join("downloads");
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
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
        }
        println!("{:<8} installed {}", c.name, target.display());
    }
    if !yes && CORPORA.iter().any(|c| !ood.join(c.name).exists()) {
        println!("\nrun `cargo xtask data --yes` to install the missing corpora (root, network to the package registries)");
    }
    Ok(())
}
