//! `cargo xtask setup`: idempotent bootstrap of everything pktloss needs to build and test.
//!
//! Each step prints one line on stderr (stdout stays clean for `run`): `ok: ... already present`,
//! `did: ...` or `skip: ...`.
use std::{
    env, fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::util::{self, home, is_root, output, run};

/// Debian packages the tests and the benchmark use.
pub(crate) const DEBIAN_PACKAGES: &[&str] = &[
    "nftables",
    "iptables",
    // The side-by-side test with dropwatch (a peer as the oracle) in the kernel matrix.
    "dropwatch",
    "conntrack",
    "ethtool",
    "tshark",
    // The filter unit tests check pktloss's filters against tcpdump's on the same packets.
    "tcpdump",
    "bpftool",
    // The tests build tiny tc and XDP programs (tests/tests/sources.rs) and attach them with tc.
    "clang",
    "iproute2",
    "tmux",
    "linux-perf",
    "bpftrace",
    "procps",
    "kmod",
    // Holds a system call of pktloss in a test (a kill during the write of its output).
    "strace",
    // The kernel matrix (`cargo xtask vm-test`); its arm64 guest: the emulator, the cross linker
    // of the aarch64 binaries.
    "qemu-system-x86",
    "qemu-system-arm",
    "gcc-aarch64-linux-gnu",
    "busybox-static",
    "cpio",
    "xz-utils",
    "zstd",
    // `pktloss serve` is scraped by a real Prometheus in the tests; promtool checks the
    // exposition and the alert rules (installed without recommends, its service not started).
    "prometheus",
    // The names test runs a real Podman container (runc: crun refuses a host whose cgroup v2
    // hierarchy has a controller beside v1's, as this VM's has).
    "podman",
    "runc",
    // The deploy tests read YAML and install kubernetes-validate (PyPI) into a venv.
    "python3-yaml",
    "python3-venv",
    // `cargo xtask dist-test`: the .deb checked by lintian and installed in a Debian 12 root
    // (debootstrap) booted by systemd-nspawn (systemd-container).
    "lintian",
    "debootstrap",
    "systemd-container",
    // `cargo xtask bench-throughput`: TCP throughput between two namespaces with and without
    // `pktloss serve` (its daemon is not started: debconf answered below).
    "iperf3",
];

/// Packages installed without their recommends (`prometheus` recommends a node exporter) and
/// with their services kept from starting.
const QUIET_PACKAGES: &[&str] = &["prometheus"];

/// The bpf-linker series we build with.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// How much of the bootstrap a subcommand needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Only what building needs: nightly rust-src and bpf-linker (no root needed).
    Toolchain,
    /// Everything: also Debian packages and tracefs (root needed when something is missing).
    All,
}

/// Run the bootstrap steps for `scope`.
pub(crate) fn setup(scope: Scope) -> Result<()> {
    util::ensure_cargo_bin_on_path();
    let sysroot = nightly_rust_src()?;
    bpf_linker(&sysroot)?;
    if scope == Scope::All {
        debian_packages()?;
        tracefs()?;
        debugfs();
        cargo_fuzz()?;
    }
    Ok(())
}

/// cargo-fuzz, for the bounded fuzz smoke run of the capture-file reader in `xtask test`.
fn cargo_fuzz() -> Result<()> {
    if let Ok(v) = output(util::cargo().args(["fuzz", "--version"])) {
        eprintln!("ok: {} already present", v.trim());
        return Ok(());
    }
    eprintln!("installing cargo-fuzz (about a minute)...");
    run(util::cargo().args(["install", "cargo-fuzz", "--locked"])).context("installing cargo-fuzz")?;
    eprintln!("did: installed cargo-fuzz");
    Ok(())
}

/// The nightly toolchain with rust-src (aya-build builds the eBPF crate with `-Z build-std`).
fn nightly_rust_src() -> Result<PathBuf> {
    let Ok(sysroot) = nightly_sysroot() else {
        run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))
        .context("installing the nightly toolchain")?;
        eprintln!("did: installed the nightly toolchain with rust-src");
        return nightly_sysroot();
    };
    if sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        eprintln!("ok: nightly toolchain with rust-src already present");
    } else {
        run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
            .context("adding rust-src to nightly")?;
        eprintln!("did: added rust-src to the nightly toolchain");
    }
    Ok(sysroot)
}

fn nightly_sysroot() -> Result<PathBuf> {
    let out = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let path = PathBuf::from(out.trim());
    if !path.is_dir() {
        bail!("nightly sysroot {} does not exist", path.display());
    }
    Ok(path)
}

/// bpf-linker 0.13, linked against nightly's own libLLVM through a lasting symlink directory.
fn bpf_linker(sysroot: &Path) -> Result<()> {
    let force = env::var_os("PKTLOSS_REBUILD_BPF_LINKER").is_some_and(|v| v == "1");
    match output(Command::new("bpf-linker").arg("--version")) {
        Ok(v) if v.contains("bpf-linker 0.13") && !force => {
            eprintln!("ok: {} already present", v.trim());
            return Ok(());
        }
        _ => {}
    }
    let prefix = llvm_prefix();
    let (major, soname) = nightly_llvm(sysroot)?;
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("cannot create {}", lib.display()))?;
    let target = sysroot.join("lib").join(&soname);
    for name in ["libLLVM.so".to_string(), soname.clone()] {
        let link = lib.join(&name);
        if fs::read_link(&link).is_ok_and(|t| t == target) {
            continue;
        }
        if link.symlink_metadata().is_ok() {
            fs::remove_file(&link).with_context(|| format!("cannot replace {}", link.display()))?;
        }
        symlink(&target, &link).with_context(|| format!("cannot link {}", link.display()))?;
    }
    eprintln!("did: linked {} -> {}", lib.display(), target.display());
    eprintln!("building bpf-linker {BPF_LINKER_VERSION} against LLVM {major} (about a minute)...");
    run(util::cargo()
        .env("LLVM_PREFIX", &prefix)
        .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--locked", "--force"])
        .args(["--no-default-features", "--features"])
        .arg(format!("llvm-{major}")))
    .context("building bpf-linker")?;
    let installed = install_root().join("bin/bpf-linker");
    let v = output(Command::new(&installed).arg("--version"))
        .with_context(|| format!("{} was installed but does not run", installed.display()))?;
    eprintln!("did: installed {}", v.trim());
    Ok(())
}

/// Where `cargo install` puts binaries' parent: `CARGO_INSTALL_ROOT`, `CARGO_HOME` or `~/.cargo`.
fn install_root() -> PathBuf {
    ["CARGO_INSTALL_ROOT", "CARGO_HOME"]
        .iter()
        .find_map(|k| env::var_os(k).filter(|v| !v.is_empty()))
        .map_or_else(|| home().join(".cargo"), PathBuf::from)
}

/// Where the libLLVM symlinks live: `PKTLOSS_LLVM_PREFIX`, else `~/.local/share/pktloss/llvm`.
fn llvm_prefix() -> PathBuf {
    env::var_os("PKTLOSS_LLVM_PREFIX")
        .filter(|p| !p.is_empty())
        .map_or_else(|| home().join(".local/share/pktloss/llvm"), PathBuf::from)
}

/// Nightly's LLVM major version and the file name of its shared libLLVM.
fn nightly_llvm(sysroot: &Path) -> Result<(String, String)> {
    let vv = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let version = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version:"))
        .map(str::trim)
        .context("`rustc +nightly -vV` prints no LLVM version")?;
    let major = version.split('.').next().unwrap_or(version).to_string();
    let libdir = sysroot.join("lib");
    let soname = fs::read_dir(&libdir)
        .with_context(|| format!("cannot read {}", libdir.display()))?
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.contains(".so")))
        .with_context(|| format!("no libLLVM.so.* in {}", libdir.display()))?;
    Ok((major, soname))
}

/// Install whichever Debian packages are missing (one `dpkg-query` when none is).
/// The version of qemu-utils to install beside the emulator, when the installed one is not the
/// emulator's: some machines come with a backported qemu-utils (10.x) whose `Breaks:
/// qemu-system-common (<< 8.0)` stops apt from installing Debian 12's emulator (7.2) at all.
fn qemu_utils_pin(missing: &[&String]) -> Option<String> {
    if !missing.iter().any(|p| p.starts_with("qemu-system-")) {
        return None;
    }
    let installed = output(Command::new("dpkg-query").args(["-W", "-f", "${Version}", "qemu-utils"])).ok()?;
    let policy = output(Command::new("apt-cache").args(["policy", "qemu-system-x86"])).ok()?;
    let candidate = policy.lines().find_map(|l| l.trim().strip_prefix("Candidate: "))?.trim().to_owned();
    (!installed.trim().is_empty() && installed.trim() != candidate && candidate != "(none)").then_some(candidate)
}

fn debian_packages() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        eprintln!("ok: Debian packages already present ({})", DEBIAN_PACKAGES.join(" "));
        return Ok(());
    }
    if !is_root() {
        bail!("setup must run as root to install missing Debian packages: {}", missing.join(" "));
    }
    // tshark asks whether non-root users may capture, iperf3 whether to start its daemon:
    // answer before they ask.
    let mut debconf = Command::new("debconf-set-selections")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("cannot start debconf-set-selections")?;
    if let Some(mut stdin) = debconf.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(
                b"wireshark-common wireshark-common/install-setuid boolean false\n\
                  iperf3 iperf3/start_daemon boolean false\n",
            )
            .context("cannot preseed debconf")?;
    }
    debconf.wait().context("debconf-set-selections")?;
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive").stdin(std::process::Stdio::null()).args(args);
        c
    };
    eprintln!("installing Debian packages: {}", missing.join(" "));
    run(&mut apt(&["update", "-q"]))?;
    let (quiet, loud): (Vec<&String>, Vec<&String>) =
        missing.iter().partition(|p| QUIET_PACKAGES.contains(&p.as_str()));
    if !loud.is_empty() {
        let mut install = apt(&["install", "-y", "-q", "-o", "Dpkg::Options::=--force-confold"]);
        install.args(&loud);
        if let Some(pin) = qemu_utils_pin(&loud) {
            eprintln!("note: qemu-utils {pin} replaces the installed one, which breaks Debian 12's emulator");
            install.arg("--allow-downgrades").arg(format!("qemu-utils={pin}"));
        }
        run(&mut install)?;
    }
    if !quiet.is_empty() {
        // policy-rc.d exit 101: invoke-rc.d and deb-systemd-invoke start no service.
        let policy = Path::new("/usr/sbin/policy-rc.d");
        let ours = !policy.exists();
        if ours {
            fs::write(policy, "#!/bin/sh\nexit 101\n").context("writing /usr/sbin/policy-rc.d")?;
            fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .context("making /usr/sbin/policy-rc.d executable")?;
        }
        let mut install =
            apt(&["install", "-y", "-q", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold"]);
        install.args(&quiet);
        let r = run(&mut install);
        if ours {
            fs::remove_file(policy).context("removing /usr/sbin/policy-rc.d")?;
        }
        r?;
    }
    let still = missing_packages();
    if !still.is_empty() {
        bail!("Debian packages still missing after apt-get install: {}", still.join(" "));
    }
    eprintln!("did: installed Debian packages {}", missing.join(" "));
    Ok(())
}

fn missing_packages() -> Vec<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${db:Status-Abbrev}\n"])
        .args(DEBIAN_PACKAGES)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    DEBIAN_PACKAGES
        .iter()
        .filter(|p| {
            !text.lines().any(|l| {
                let mut it = l.split_whitespace();
                it.next().is_some_and(|n| n.split(':').next() == Some(**p))
                    && it.next().is_some_and(|s| s.starts_with("ii"))
            })
        })
        .map(|p| (*p).to_string())
        .collect()
}

fn mounted(fstype: &str, at: &str) -> bool {
    fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 2 && f[1] == at && f[2] == fstype
        })
    })
}

/// tracefs at /sys/kernel/tracing (tracepoint attach and the tests read it).
fn tracefs() -> Result<()> {
    const AT: &str = "/sys/kernel/tracing";
    if mounted("tracefs", AT) || Path::new(AT).join("events").is_dir() {
        eprintln!("ok: tracefs already mounted at {AT}");
        return Ok(());
    }
    if !is_root() {
        bail!("setup must run as root to mount tracefs at {AT}");
    }
    run(Command::new("mount").args(["-t", "tracefs", "nodev", AT]))?;
    eprintln!("did: mounted tracefs at {AT}");
    Ok(())
}

/// debugfs at /sys/kernel/debug: optional, a failure only prints a `skip:` line.
fn debugfs() {
    const AT: &str = "/sys/kernel/debug";
    if mounted("debugfs", AT) {
        eprintln!("ok: debugfs already mounted at {AT}");
    } else if !is_root() {
        eprintln!("skip: debugfs (optional) not mounted and not root");
    } else if util::succeeds(Command::new("mount").args(["-t", "debugfs", "nodev", AT])) {
        eprintln!("did: mounted debugfs at {AT}");
    } else {
        eprintln!("skip: debugfs (optional) could not be mounted at {AT}");
    }
}
