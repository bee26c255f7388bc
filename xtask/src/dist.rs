//! `cargo xtask dist`: the release files in `target/dist/`: a static musl pktloss per
//! architecture in a tarball and a .deb, one OCI image archive for both, and `SHA256SUMS`.
//!
//! The .deb is laid out here and packed with `dpkg-deb --root-owner-group` (no cargo-deb: the
//! package is one static binary plus generated files, and its maintainer scripts are the few
//! lines debhelper would write for a unit that is installed but not enabled). The OCI archive is
//! written file by file (layer, config, manifests, index) with no registry and no base image.
use std::{
    fmt::Write as _,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    setup::{self, Scope},
    util::{self, output, run},
};

/// The version of every artifact (the workspace's).
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A target pktloss ships for: Rust triple, Debian architecture, OCI architecture.
pub(crate) struct Arch {
    pub triple: &'static str,
    pub deb: &'static str,
    pub oci: &'static str,
}

pub(crate) const ARCHES: [Arch; 2] = [
    Arch { triple: "x86_64-unknown-linux-musl", deb: "amd64", oci: "amd64" },
    Arch { triple: "aarch64-unknown-linux-musl", deb: "arm64", oci: "arm64" },
];

/// Where the image puts the binary (the `DaemonSet`'s and the Dockerfile's path).
const IMAGE_BIN: &str = "usr/local/bin/pktloss";

/// Timestamps in the archives: the last commit's time, else 0 (reproducible builds).
fn source_date_epoch() -> String {
    std::env::var("SOURCE_DATE_EPOCH").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        output(Command::new("git").current_dir(util::workspace_root()).args(["log", "-1", "--format=%ct"]))
            .map_or_else(|_| "0".into(), |s| s.trim().to_string())
    })
}

/// Build the stripped, static release binary of pktloss for a musl `target` (eBPF object
/// embedded, built for that architecture) and return its path.
pub(crate) fn static_binary(target: &str) -> Result<PathBuf> {
    setup::setup(Scope::Toolchain)?;
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|l| l.trim() == target) {
        run(Command::new("rustup").args(["target", "add", target])).with_context(|| format!("adding {target}"))?;
    }
    let mut cmd = util::cargo();
    cmd.args(["build", "--release", "-p", "pktloss-user", "--target", target])
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols");
    if !target.starts_with(std::env::consts::ARCH) {
        // No C cross-compiler needed: Rust's musl targets carry their C runtime, rust-lld links.
        let var = format!("CARGO_TARGET_{}_LINKER", target.to_uppercase().replace('-', "_"));
        cmd.env(var, "rust-lld");
    }
    run(&mut cmd)?;
    let bin = util::target_dir().join(target).join("release/pktloss");
    let elf = fs::read(&bin).with_context(|| format!("cannot read {}", bin.display()))?;
    if has_interpreter(&elf) {
        bail!("{} is not static (it names a program interpreter)", bin.display());
    }
    Ok(bin)
}

/// Whether a 64-bit little-endian ELF file has a `PT_INTERP` program header (dynamic linking).
fn has_interpreter(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| elf.get(o..o + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), usize::from(u16_at(0x36)), usize::from(u16_at(0x38)));
    (0..phnum).any(|i| elf.get(phoff + i * phentsize..phoff + i * phentsize + 4) == Some(&3u32.to_le_bytes()[..]))
}

/// `dist`: every release file, then `SHA256SUMS`; prints each file's size.
pub(crate) fn dist() -> Result<()> {
    let start = Instant::now();
    let out = util::target_dir().join("dist");
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("cannot clear {}", out.display()))?;
    }
    let work = out.join("work");
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let docs = work.join("docs");
    run(util::cargo().args(["run", "-q", "-p", "pktloss-user", "--example", "pktloss-docs", "--"]).arg(&docs))
        .context("generating the man pages and completions")?;
    let epoch = source_date_epoch();
    let mut files = Vec::new();
    let mut images = Vec::new();
    for arch in &ARCHES {
        let bin = static_binary(arch.triple)?;
        files.push(tarball(&out, &work, &docs, &bin, arch, &epoch)?);
        files.push(deb(&out, &work, &docs, &bin, arch, &epoch)?);
        images.push((arch, bin));
    }
    files.push(oci(&out, &work, &images, &epoch)?);
    fs::remove_dir_all(&work).with_context(|| format!("cannot remove {}", work.display()))?;
    let names: Vec<String> =
        files.iter().filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
    let sums = output(Command::new("sha256sum").current_dir(&out).args(&names))?;
    fs::write(out.join("SHA256SUMS"), sums).context("writing SHA256SUMS")?;
    for f in &files {
        let size = f.metadata().map_or(0, |m| m.len());
        println!("{:>12} {}", size, f.display());
    }
    println!(
        "dist: {} files and SHA256SUMS in {} ({:.0} s)",
        files.len(),
        out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::copy(from, to).with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", to.display()))
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(to, text).with_context(|| format!("cannot write {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).with_context(|| format!("chmod {}", to.display()))
}

/// Copy a directory tree (files 0644, directories 0755).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let path = entry.path();
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&path, &dest)?;
        } else {
            copy(&path, &dest, 0o644)?;
        }
    }
    Ok(())
}

/// A reproducible tar of `dir`'s entries `names` (sorted, owner root, fixed times).
fn tar(dir: &Path, names: &[&str], archive: &Path, epoch: &str, gzip: bool) -> Result<()> {
    let mut cmd = Command::new("tar");
    cmd.current_dir(dir)
        .args(["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--format=gnu"])
        .arg(format!("--mtime=@{epoch}"));
    if gzip {
        cmd.arg("--use-compress-program=gzip -9n");
    }
    cmd.arg("-cf").arg(archive).args(names);
    run(&mut cmd)
}

/// `pktloss-VERSION-TRIPLE.tar.gz`: the binary, man pages, completions, README, licenses, deploy/.
fn tarball(out: &Path, work: &Path, docs: &Path, bin: &Path, arch: &Arch, epoch: &str) -> Result<PathBuf> {
    let root = util::workspace_root();
    let name = format!("pktloss-{VERSION}-{}", arch.triple);
    let dir = work.join(&name);
    copy(bin, &dir.join("pktloss"), 0o755)?;
    copy_tree(&docs.join("man"), &dir.join("man"))?;
    copy_tree(&docs.join("completions"), &dir.join("completions"))?;
    for f in ["README.md", "LICENSE-MIT", "LICENSE-APACHE"] {
        copy(&root.join(f), &dir.join(f), 0o644)?;
    }
    copy_tree(&root.join("deploy"), &dir.join("deploy"))?;
    let archive = out.join(format!("{name}.tar.gz"));
    tar(work, &[&name], &archive, epoch, true)?;
    Ok(archive)
}

fn gzip_to(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let data =
        Command::new("gzip").args(["-9nc"]).arg(from).output().with_context(|| format!("gzip {}", from.display()))?;
    if !data.status.success() {
        bail!("gzip {} failed", from.display());
    }
    fs::write(to, data.stdout).with_context(|| format!("cannot write {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o644)).with_context(|| format!("chmod {}", to.display()))
}

/// The Debian changelog entry of this version (the date of the last commit).
fn debian_changelog(epoch: &str) -> Result<String> {
    let date = output(Command::new("date").args(["-u", "-R", "-d"]).arg(format!("@{epoch}")))?;
    Ok(format!(
        "pktloss ({VERSION}-1) unstable; urgency=medium\n\n  * Release {VERSION}: static musl build, see \
         /usr/share/doc/pktloss/README.md.\n\n -- {MAINTAINER}  {}\n",
        date.trim()
    ))
}

const MAINTAINER: &str = "pktloss maintainers <pktloss@example.invalid>";

const DEB_DESCRIPTION: &str = "Linux kernel packet-drop tracer (eBPF)
 pktloss reports every packet the kernel drops, with why (the kernel's drop
 reason), where (function and offset), which flow (5-tuple, network
 namespace, device, process) and what to do about it (a per-cause
 diagnosis from drop events, kernel counters and configuration checks).
 .
 It includes pktloss serve, a Prometheus exporter, with a systemd unit that
 is installed but not enabled: systemctl enable --now pktloss.";

/// `pktloss_VERSION-1_ARCH.deb`.
fn deb(out: &Path, work: &Path, docs: &Path, bin: &Path, arch: &Arch, epoch: &str) -> Result<PathBuf> {
    let root = util::workspace_root();
    let dir = work.join(format!("deb-{}", arch.deb));
    copy(bin, &dir.join("usr/bin/pktloss"), 0o755)?;
    let man_dir = dir.join("usr/share/man/man1");
    for entry in fs::read_dir(docs.join("man")).context("reading the man pages")? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        gzip_to(&path, &man_dir.join(format!("{name}.gz")))?;
    }
    let comp = docs.join("completions");
    copy(&comp.join("pktloss.bash"), &dir.join("usr/share/bash-completion/completions/pktloss"), 0o644)?;
    copy(&comp.join("_pktloss"), &dir.join("usr/share/zsh/vendor-completions/_pktloss"), 0o644)?;
    copy(&comp.join("pktloss.fish"), &dir.join("usr/share/fish/vendor_completions.d/pktloss.fish"), 0o644)?;
    let unit = fs::read_to_string(root.join("deploy/systemd/pktloss.service")).context("reading the unit")?;
    write(
        &dir.join("lib/systemd/system/pktloss.service"),
        &unit.replace("/usr/local/bin/pktloss", "/usr/bin/pktloss"),
        0o644,
    )?;
    let doc = dir.join("usr/share/doc/pktloss");
    copy(&root.join("README.md"), &doc.join("README.md"), 0o644)?;
    write(&work.join("changelog.Debian"), &debian_changelog(epoch)?, 0o644)?;
    gzip_to(&work.join("changelog.Debian"), &doc.join("changelog.Debian.gz"))?;
    write(&doc.join("copyright"), &debian_copyright(&root)?, 0o644)?;
    write(
        &dir.join("usr/share/lintian/overrides/pktloss"),
        "# One static binary (musl) is the point: it runs on any distribution's kernel, with no libc.\n\
         # (x86_64 links it static-pie: an ELF of type DYN without DT_NEEDED; aarch64 plain static.)\n\
         pktloss: statically-linked-binary [usr/bin/pktloss]\n\
         pktloss: shared-library-lacks-prerequisites [usr/bin/pktloss]\n",
        0o644,
    )?;
    let installed_kib = du_kib(&dir)?;
    let control = format!(
        "Package: pktloss\nVersion: {VERSION}-1\nArchitecture: {}\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {installed_kib}\nSection: net\nPriority: optional\n\
         Homepage: https://example.invalid/pktloss\nDescription: {DEB_DESCRIPTION}\n",
        arch.deb
    );
    write(&dir.join("DEBIAN/control"), &control, 0o644)?;
    write(&dir.join("DEBIAN/postinst"), POSTINST, 0o755)?;
    write(&dir.join("DEBIAN/prerm"), PRERM, 0o755)?;
    write(&dir.join("DEBIAN/postrm"), POSTRM, 0o755)?;
    let sums = output(
        Command::new("sh")
            .current_dir(&dir)
            .args(["-c", "find . -path ./DEBIAN -prune -o -type f -printf '%P\\0' | sort -z | xargs -0 md5sum"]),
    )?;
    write(&dir.join("DEBIAN/md5sums"), &sums, 0o644)?;
    // Directories 0755 whatever the umask; every mtime the release's.
    run(Command::new("find").arg(&dir).args(["-type", "d", "-exec", "chmod", "0755", "{}", "+"]))?;
    run(Command::new("find")
        .arg(&dir)
        .args(["-exec", "touch", "-h", "-d"])
        .arg(format!("@{epoch}"))
        .args(["{}", "+"]))?;
    let deb = out.join(format!("pktloss_{VERSION}-1_{}.deb", arch.deb));
    run(Command::new("dpkg-deb")
        .env("SOURCE_DATE_EPOCH", epoch)
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&dir)
        .arg(&deb))?;
    Ok(deb)
}

fn du_kib(dir: &Path) -> Result<u64> {
    let out = output(Command::new("du").args(["-sk", "--apparent-size"]).arg(dir))?;
    out.split_whitespace().next().and_then(|n| n.parse().ok()).context("du prints no size")
}

/// The machine-readable copyright file (MIT text inline, Apache-2.0 from common-licenses).
fn debian_copyright(root: &Path) -> Result<String> {
    let mit = fs::read_to_string(root.join("LICENSE-MIT")).context("reading LICENSE-MIT")?;
    let mut s = String::from(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: pktloss\nSource: https://example.invalid/pktloss\n\n\
         Files: *\nCopyright: 2026 the pktloss authors\nLicense: MIT or Apache-2.0\n\
         Comment: The binary is statically linked with the Rust standard library, musl and the\n \
         crates listed in the source's Cargo.lock, each under its own (permissive) license.\n\n\
         License: MIT\n",
    );
    // The license body after its title line, each line indented, blank lines as " .".
    for line in mit.lines().skip_while(|l| !l.starts_with("Permission")) {
        if line.trim().is_empty() {
            s.push_str(" .\n");
        } else {
            let _ = writeln!(s, " {line}");
        }
    }
    s.push_str(
        "\nLicense: Apache-2.0\n On Debian systems, the full text of the Apache License, Version 2.0 can be\n \
         found in the file /usr/share/common-licenses/Apache-2.0.\n",
    );
    Ok(s)
}

/// As `dh_installsystemd` writes for a unit that is installed but neither enabled nor started.
const POSTINST: &str = r#"#!/bin/sh
set -e
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper update-state 'pktloss.service' >/dev/null || true
	fi
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
	fi
fi
exit 0
"#;

/// Stops the service on removal (it runs only if the administrator enabled or started it).
const PRERM: &str = r#"#!/bin/sh
set -e
if [ -z "${DPKG_ROOT:-}" ] && [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop 'pktloss.service' >/dev/null || true
fi
exit 0
"#;

/// On remove and purge: forget the unit's enablement (its symlinks and helper state), so that
/// nothing of pktloss stays behind; the package has no configuration file to keep.
const POSTRM: &str = r#"#!/bin/sh
set -e
if [ "$1" = "remove" ] || [ "$1" = "purge" ]; then
	if command -v deb-systemd-helper >/dev/null; then
		deb-systemd-helper purge 'pktloss.service' >/dev/null || true
		deb-systemd-helper unmask 'pktloss.service' >/dev/null || true
	fi
	if [ -z "${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
	fi
fi
exit 0
"#;

/// sha256 of a file, as `sha256sum` prints it.
fn sha256(path: &Path) -> Result<String> {
    let out = output(Command::new("sha256sum").arg(path))?;
    out.split_whitespace().next().map(str::to_string).context("sha256sum prints no digest")
}

/// Move a file into `blobs/sha256/` under its digest; return (digest, size).
fn blob(layout: &Path, file: &Path) -> Result<(String, u64)> {
    let digest = sha256(file)?;
    let size = file.metadata().with_context(|| format!("stat {}", file.display()))?.len();
    let to = layout.join("blobs/sha256").join(&digest);
    fs::create_dir_all(layout.join("blobs/sha256")).context("creating blobs/sha256")?;
    fs::rename(file, &to).with_context(|| format!("cannot move {} to {}", file.display(), to.display()))?;
    Ok((format!("sha256:{digest}"), size))
}

fn json_blob(layout: &Path, work: &Path, value: &serde_json::Value) -> Result<(String, u64)> {
    let tmp = work.join("blob.json");
    fs::write(&tmp, serde_json::to_vec(value)?).context("writing a JSON blob")?;
    blob(layout, &tmp)
}

/// `pktloss-VERSION-oci.tar`: an OCI image layout (one index of both architectures' images,
/// each a single layer with the static binary at /usr/local/bin/pktloss) in a tar.
fn oci(out: &Path, work: &Path, images: &[(&Arch, PathBuf)], epoch: &str) -> Result<PathBuf> {
    use serde_json::json;
    let layout = work.join("oci");
    fs::create_dir_all(&layout).context("creating the OCI layout")?;
    let mut manifests = Vec::new();
    for (arch, bin) in images {
        let rootfs = work.join(format!("rootfs-{}", arch.oci));
        copy(bin, &rootfs.join(IMAGE_BIN), 0o755)?;
        run(Command::new("find").arg(&rootfs).args(["-type", "d", "-exec", "chmod", "0755", "{}", "+"]))?;
        let layer_tar = work.join(format!("layer-{}.tar", arch.oci));
        tar(&rootfs, &["usr"], &layer_tar, epoch, false)?;
        let diff_id = format!("sha256:{}", sha256(&layer_tar)?);
        run(Command::new("gzip").args(["-9n"]).arg(&layer_tar))?;
        let (layer_digest, layer_size) = blob(&layout, &layer_tar.with_extension("tar.gz"))?;
        let created = output(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ", "-d"]).arg(format!("@{epoch}")))?;
        let config = json!({
            "created": created.trim(),
            "architecture": arch.oci,
            "os": "linux",
            "config": {
                "Entrypoint": [format!("/{IMAGE_BIN}")],
                "Cmd": ["serve", "--listen", "0.0.0.0:19623"],
                "ExposedPorts": {"19623/tcp": {}},
                "Labels": {
                    "org.opencontainers.image.title": "pktloss",
                    "org.opencontainers.image.version": VERSION,
                    "org.opencontainers.image.licenses": "MIT OR Apache-2.0",
                },
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": created.trim(), "created_by": "cargo xtask dist"}],
        });
        let (config_digest, config_size) = json_blob(&layout, work, &config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
        });
        let (digest, size) = json_blob(&layout, work, &manifest)?;
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "platform": {"architecture": arch.oci, "os": "linux"},
        }));
    }
    // index.json names one image index (the multi-architecture image); a runtime picks its own
    // architecture's manifest from it.
    let list = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let (list_digest, list_size) = json_blob(&layout, work, &list)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": list_digest,
            "size": list_size,
            "annotations": {"org.opencontainers.image.ref.name": format!("localhost/pktloss:{VERSION}")},
        }],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index)?).context("writing index.json")?;
    fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).context("writing oci-layout")?;
    let archive = out.join(format!("pktloss-{VERSION}-oci.tar"));
    tar(&layout, &["blobs", "index.json", "oci-layout"], &archive, epoch, false)?;
    Ok(archive)
}

#[cfg(test)]
mod tests {
    #[test]
    fn interpreter_is_found_in_a_dynamic_elf() {
        let me = std::fs::read(std::env::current_exe().expect("exe")).expect("read exe");
        // The test binary is linked against glibc (dynamic, with an interpreter).
        assert!(super::has_interpreter(&me));
        assert!(!super::has_interpreter(b"not an elf"));
    }
}
