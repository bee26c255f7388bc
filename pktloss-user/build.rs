//! Build the eBPF programs (`pktloss-ebpf`) with aya-build and embed them; write what
//! `pktloss --version` says (git commit, target, the embedded programs) into `OUT_DIR`.
//!
//! With `AYA_BUILD_SKIP=1` (pure-logic work without bpf-linker) an empty object is embedded
//! and `pktloss` reports at start that it was built without its programs.
use std::{
    env,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, anyhow};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _, SymbolKind};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let object = out_dir.join("pktloss");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        if !object.exists() {
            fs::write(&object, b"").context("write placeholder eBPF object")?;
        }
    } else {
        let cargo_metadata::Metadata { packages, .. } =
            cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
        let ebpf = packages
            .into_iter()
            .find(|p| p.name.as_str() == "pktloss-ebpf")
            .ok_or_else(|| anyhow!("pktloss-ebpf package not found"))?;
        let root_dir = ebpf.manifest_path.parent().ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
        aya_build::build_ebpf(
            [aya_build::Package { name: ebpf.name.as_str(), root_dir: root_dir.as_str(), ..Default::default() }],
            aya_build::Toolchain::default(),
        )?;
    }
    let version = long_version(&object)?;
    fs::write(out_dir.join("long_version.txt"), version.trim_end()).context("write long_version.txt")
}

/// The text after `pktloss VERSION` in `pktloss --version`.
fn long_version(object: &Path) -> anyhow::Result<String> {
    let target = env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "unknown".into());
    // Cargo leaves crt-static out of CARGO_CFG_TARGET_FEATURE: musl targets link statically
    // unless the flags say otherwise.
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let musl = env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|e| e == "musl");
    let linking =
        if !flags.contains("-crt-static") && (musl || flags.contains("+crt-static")) { "static" } else { "dynamic" };
    let bytes = fs::read(object).with_context(|| format!("read {}", object.display()))?;
    let programs = if bytes.is_empty() { Vec::new() } else { programs(&bytes)? };
    let mut s = format!("\ncommit: {}\ntarget: {target} ({linking})\n", git_commit());
    if programs.is_empty() {
        s.push_str("ebpf: none (built with AYA_BUILD_SKIP=1: cannot trace)\n");
        return Ok(s);
    }
    writeln!(s, "ebpf: {} programs for {arch} kernels, struct offsets from the running kernel's BTF", programs.len())?;
    for (name, kind) in &programs {
        // A tp_btf program with a classic-tracepoint twin falls back to it.
        let fallback = name
            .strip_suffix("_btf")
            .filter(|base| programs.iter().any(|(n, k)| n == &format!("{base}_tp") && k.starts_with("tracepoint")))
            .map_or(String::new(), |base| format!(" (else {base}_tp)"));
        writeln!(s, "  {kind:<28} {name}{fallback}")?;
    }
    Ok(s)
}

/// Each program of the object: (function name, ELF section = attach type[/hook]).
fn programs(bytes: &[u8]) -> anyhow::Result<Vec<(String, String)>> {
    let file = object::File::parse(bytes).context("parse the eBPF object")?;
    let mut out = Vec::new();
    for sym in file.symbols() {
        if sym.kind() != SymbolKind::Text || !sym.is_global() {
            continue;
        }
        let Some(index) = sym.section_index() else { continue };
        let section = file.section_by_index(index).context("symbol section")?;
        let section = section.name().context("section name")?;
        if section.starts_with(".text") {
            continue;
        }
        out.push((sym.name().context("symbol name")?.to_string(), section.to_string()));
    }
    out.sort();
    Ok(out)
}

/// The commit pktloss is built from (`PKTLOSS_GIT_COMMIT` if set, e.g. from a source tarball),
/// else "unknown" outside a git checkout; rebuilt when HEAD moves.
fn git_commit() -> String {
    println!("cargo:rerun-if-env-changed=PKTLOSS_GIT_COMMIT");
    if let Ok(c) = env::var("PKTLOSS_GIT_COMMIT") {
        return c;
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    // HEAD, the branch it names and packed-refs: a commit or a checkout changes one of them.
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            rerun_if_exists(&p);
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(&["rev-parse", "--git-path", &branch])
    {
        rerun_if_exists(&p);
    }
    git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
}

fn rerun_if_exists(path: &str) {
    if Path::new(path).exists() {
        println!("cargo:rerun-if-changed={path}");
    }
}
