//! `cargo xtask vm-test`: the real-kernel portability tests inside qemu guests booted with
//! Debian's own kernels (the kernel matrix).
//!
//! Each guest boots an unpacked Debian `linux-image-*-unsigned` package under qemu TCG (the
//! nested KVM of these machines cannot run stock kernels) with a busybox initramfs that loads
//! the 9p and overlay modules of that kernel, mounts a root read-only over 9p under a tmpfs
//! overlay, binds the kernel's own modules at `/lib/modules/$(uname -r)`, and runs the
//! workspace's integration-test binaries (built on the host) with the portability tests
//! selected by their mark: the module they are written in (`mod matrix`, `mod matrix::arm64`,
//! `mod matrix_once` in `tests/tests/*.rs`), read from each binary's `--list`.
//!
//! What runs is the release artifact: the static musl `pktloss` of `cargo xtask dist`, checked
//! to have no ELF interpreter, and run with a `PATH` that is an empty directory
//! (`PKTLOSS_CHILD_PATH`, which the test harness gives to the pktloss process only: the tests'
//! own setup still uses `ip` and `nft`).
//!
//! The x86-64 guests (Debian 11, 12 and 12's newer kernel) see the host's `/` as their root. The
//! arm64 guest (qemu-system-aarch64 `-M virt`) cannot use the host's x86-64 programs: its root
//! is Debian 12 arm64's essential and required packages with the tests' tools, their
//! dependencies downloaded by a private apt and unpacked (no maintainer script runs, so nothing
//! arm64 runs on the host), and it runs the aarch64 musl `pktloss` with aarch64 test binaries.
//!
//! Kernels and the arm64 root are cached outside the clone (`$XDG_CACHE_HOME/pktloss/vm`, else
//! `~/.cache/pktloss/vm`): a second run neither updates the package lists nor downloads.
use std::{
    collections::BTreeMap,
    env,
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    dist,
    setup::{self, Scope},
    totals::Totals,
    util::{self, output, run, show},
};

/// A guest architecture: how qemu emulates it and which binaries it runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The Rust target of the static `pktloss` and of the test binaries the guest runs.
    fn musl_target(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64-unknown-linux-musl",
            Self::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    /// Debian's name of the architecture.
    fn debian(self) -> &'static str {
        match self {
            Self::X86_64 => "amd64",
            Self::Aarch64 => "arm64",
        }
    }

    /// `e_machine` of its ELF files.
    fn elf_machine(self) -> u16 {
        match self {
            Self::X86_64 => 62,
            Self::Aarch64 => 183,
        }
    }

    /// The qemu system emulator and its machine arguments. On aarch64 the pointer
    /// authentication of `-cpu max` is emulated with QEMU's cheap algorithm (`pauth-impdef`):
    /// the architected one costs much of the guest's speed under TCG.
    fn qemu(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Self::X86_64 => ("qemu-system-x86_64", &["-cpu", "max"]),
            Self::Aarch64 => ("qemu-system-aarch64", &["-M", "virt", "-cpu", "max,pauth-impdef=on"]),
        }
    }

    /// The architecture of this machine (the one whose test binaries run here).
    fn host() -> Self {
        if env::consts::ARCH == "aarch64" { Self::Aarch64 } else { Self::X86_64 }
    }

    /// The serial console of the machine.
    fn console(self) -> &'static str {
        match self {
            Self::X86_64 => "ttyS0",
            Self::Aarch64 => "ttyAMA0",
        }
    }
}

/// A kernel series of the matrix and where its Debian package comes from.
struct Series {
    /// What `--kernel` takes.
    name: &'static str,
    /// The guest's architecture (its kernel package's, its root's and its binaries').
    arch: Arch,
    /// The marks of the tests it runs when none are named: module paths in the test binaries
    /// (`matrix` selects `matrix::*` and `matrix::arm64::*`). Each must select a test.
    marks: &'static [&'static str],
    /// Debian suites that carry it (the private apt config lists these).
    suites: &'static [&'static str],
    /// The package name is `PREFIX<abi>SUFFIX`, `<abi>` a version without `-` (e.g. `57`,
    /// `118+deb12`); the newest ABI is taken.
    prefix: &'static str,
    suffix: &'static str,
}

/// The kernels of the matrix besides the host's own: Debian 11, Debian 12, Debian 12
/// security / Debian 13 (x86-64), and Debian 12's on arm64.
const MATRIX: &[Series] = &[
    Series {
        name: "5.10",
        arch: Arch::X86_64,
        marks: &[MARK_MATRIX, MARK_ONCE],
        suites: &["bullseye", "bullseye-security"],
        prefix: "linux-image-5.10.0-",
        suffix: "-amd64-unsigned",
    },
    Series {
        name: "6.1",
        arch: Arch::X86_64,
        marks: &[MARK_MATRIX, MARK_NETDEVSIM, MARK_NIC],
        suites: &["bookworm", "bookworm-security"],
        prefix: "linux-image-6.1.0-",
        suffix: "-amd64-unsigned",
    },
    Series {
        name: "6.12",
        arch: Arch::X86_64,
        marks: &[MARK_MATRIX],
        suites: &["bookworm", "bookworm-security"],
        prefix: "linux-image-6.12.",
        suffix: "-amd64-unsigned",
    },
    Series {
        name: "arm64",
        arch: Arch::Aarch64,
        marks: &[MARK_ARM64],
        suites: ARM64_SUITES,
        prefix: "linux-image-6.1.0-",
        suffix: "-arm64-unsigned",
    },
];

/// The mark of the tests that matter for portability, run in every x86-64 guest: the module
/// `matrix` of a test file.
const MARK_MATRIX: &str = "matrix";

/// Portability tests whose outcome does not depend on the kernel (usage errors, pktloss's own
/// capability check, faked BTF and tracefs paths, filter parse errors), the module
/// `matrix_once`: run once, in the 5.10 guest (the only one where
/// `a_bad_filter_is_one_line_and_exit_2` takes its no-reasons branch). They took 10 to 20 s each
/// in a guest.
const MARK_ONCE: &str = "matrix_once";

/// Run in the guest that gets netdevsim ([`NETDEVSIM_SERIES`]), the module `matrix_netdevsim`:
/// hardware traps, exact against devlink's trap statistics (12 s in the 6.1 guest).
const MARK_NETDEVSIM: &str = "matrix_netdevsim";

/// Run in the guest that gets a second, real virtio-net NIC ([`NIC_SERIES`]), the module
/// `matrix_nic`: native XDP drops on a NIC driver, exact against the driver's counter.
const MARK_NIC: &str = "matrix_nic";

/// The series whose guest gets the virtio-net NIC of [`NIC_ARGS`].
const NIC_SERIES: &str = "6.1";

/// A virtio-net NIC on qemu's user network (slirp: the gateway 10.0.2.2 answers pings), with
/// the guest offloads off (`virtio_net` refuses native XDP while the host may hand it GRO/CSUM
/// frames). One queue pair. No driver binds it until a test loads `virtio_net` (the guest has
/// no udev), so the other tests see no new device.
const NIC_ARGS: &[&str] = &[
    "-netdev",
    "user,id=xdpnic",
    "-device",
    "virtio-net-pci,netdev=xdpnic,guest_csum=off,guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off",
];

/// What the arm64 guest runs with the aarch64 binary (the module `matrix::arm64`, so the x86-64
/// guests run them too): exact `NO_SOCKET` count = the kernel's `NoPorts` delta (v4 and v6), an
/// nftables drop = its rule's counter, `diagnose` names no-listener with the exact drops, and a
/// real Prometheus scrapes `serve`.
const MARK_ARM64: &str = "matrix::arm64";

/// Debian packages of the arm64 guest's root besides the essential and required ones: the
/// tests' own tools (`ip`, `nft`, `sysctl`, `bpftool` to see that nothing stays loaded,
/// Prometheus and promtool) and busybox for the initramfs.
const ARM64_ROOT_PACKAGES: &[&str] =
    &["iproute2", "nftables", "procps", "kmod", "bpftool", "prometheus", "busybox-static"];

/// The directory the guest gives pktloss as its `PATH`: empty, so no other program is found.
const EMPTY_PATH_DIR: &str = "/run/pktloss-no-tools";

/// Modules the initramfs loads (with what they depend on) before it can mount the root.
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];

/// Marker the guest's init prints with the exit code of the test script.
const EXIT_MARKER: &str = "PKTLOSS-VM-EXIT=";

const DEFAULT_CPUS: u32 = 2;
const DEFAULT_MEMORY_MIB: u32 = 2048;
const DEFAULT_TIMEOUT_SECS: u64 = 1500;

#[derive(clap::Args)]
pub(crate) struct VmArgs {
    /// Kernel series to boot (comma-separated): 5.10, 6.1, 6.12 (x86-64), arm64 (6.1), or all.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    kernel: Vec<String>,
    /// Guest CPUs.
    #[arg(long, default_value_t = DEFAULT_CPUS)]
    cpus: u32,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = DEFAULT_MEMORY_MIB)]
    memory_mib: u32,
    /// Time limit per guest, in seconds.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_SECS)]
    timeout_secs: u64,
    /// Run this shell command in the guests instead of the portability tests (for exploring).
    #[arg(long)]
    exec: Option<String>,
    /// Print the tests each selected guest would run, and boot none.
    #[arg(long)]
    list: bool,
    /// Test names to run instead of the portability set (a test's full name, `matrix::x`, or
    /// its last part, `x`; any test binary; each must name a test).
    #[arg(trailing_var_arg = true)]
    tests: Vec<String>,
}

impl Default for VmArgs {
    /// What `cargo xtask test` runs: every kernel, the portability set.
    fn default() -> Self {
        Self {
            kernel: vec!["all".to_owned()],
            cpus: DEFAULT_CPUS,
            memory_mib: DEFAULT_MEMORY_MIB,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            exec: None,
            list: false,
            tests: Vec::new(),
        }
    }
}

/// `vm-test`: setup, then every selected kernel in turn; fails if any guest does.
pub(crate) fn vm_test(args: VmArgs) -> Result<()> {
    setup::setup(Scope::All)?;
    run_matrix(&args)
}

/// What the guests of one architecture run.
struct Binaries {
    /// The static `pktloss` of `cargo xtask dist`.
    pktloss: PathBuf,
    /// The integration-test binaries by name (`foundation`, `diagnose`, ...).
    tests: BTreeMap<String, PathBuf>,
}

/// Build what the selected kernels' guests run, then boot them one after the other.
pub(crate) fn run_matrix(args: &VmArgs) -> Result<()> {
    let series = select(&args.kernel)?;
    // The names come from the host's build of the tests (an aarch64 binary does not run here):
    // the same sources, so the same names.
    let listing = list_tests(&test_binaries(Arch::host())?)?;
    let mut selected = BTreeMap::new();
    for s in &series {
        let wanted = wanted_tests(args, s, &listing)?;
        eprintln!("vm {}: {} tests selected", s.name, wanted.len());
        if args.list {
            for (b, t) in &wanted {
                println!("{} {b} {t}", s.name);
            }
        }
        selected.insert(s.name, wanted);
    }
    if args.list {
        return Ok(());
    }
    let cache = cache_dir();
    let started = Instant::now();
    let mut built: BTreeMap<&str, Binaries> = BTreeMap::new();
    let mut lines = Vec::new();
    for s in &series {
        let target = s.arch.musl_target();
        if !built.contains_key(target) {
            let t = Instant::now();
            built.insert(target, binaries(s.arch)?);
            lines.push(format!("vm binaries for {target}: built in {:.0} s", t.elapsed().as_secs_f64()));
        }
    }
    let mut failed = Vec::new();
    for s in series {
        let t = Instant::now();
        let kernel = kernel(s, &cache).with_context(|| format!("kernel {}", s.name))?;
        if s.name == NETDEVSIM_SERIES {
            netdevsim_for(&kernel, &cache);
        }
        let bins = built.get(s.arch.musl_target()).context("binaries of the guest's architecture")?;
        let wanted = selected.get(s.name).context("the guest's tests")?;
        let result = boot(args, s, &kernel, bins, wanted, &cache);
        let secs = t.elapsed().as_secs_f64();
        match result {
            Ok(totals) => lines.push(format!(
                "vm {} ({}): {} passed, {} failed in {secs:.0} s",
                s.name, kernel.release, totals.passed, totals.failed
            )),
            Err(e) => {
                lines.push(format!("vm {} ({}): FAILED in {secs:.0} s: {e:#}", s.name, kernel.release));
                failed.push(s.name);
            }
        }
    }
    for l in &lines {
        println!("xtask: {l}");
    }
    println!("xtask: kernel matrix took {:.0} s", started.elapsed().as_secs_f64());
    if !failed.is_empty() {
        bail!("kernel matrix FAILED on {}", failed.join(", "));
    }
    Ok(())
}

fn select(names: &[String]) -> Result<Vec<&'static Series>> {
    if names.iter().any(|n| n == "all") {
        return Ok(MATRIX.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            MATRIX.iter().find(|s| s.name == n).with_context(|| {
                let known: Vec<&str> = MATRIX.iter().map(|s| s.name).collect();
                format!("unknown kernel {n:?} (known: {}, all)", known.join(", "))
            })
        })
        .collect()
}

/// Where kernels and the private apt state live.
fn cache_dir() -> PathBuf {
    env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map_or_else(|| util::home().join(".cache"), PathBuf::from)
        .join("pktloss/vm")
}

/// An unpacked kernel package.
struct Kernel {
    /// `uname -r` of the guest.
    release: String,
    /// The unpacked package (`boot/`, `lib/modules/<release>/`).
    root: PathBuf,
}

impl Kernel {
    fn image(&self) -> PathBuf {
        self.root.join(format!("boot/vmlinuz-{}", self.release))
    }

    fn modules(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }

    /// Whether depmod ran on it (the package ships no modules.dep: its postinst makes it).
    fn has_module_deps(&self) -> bool {
        self.modules().join("modules.dep").is_file()
    }
}

/// The cached kernel of a series, downloaded and unpacked on first use.
fn kernel(s: &Series, cache: &Path) -> Result<Kernel> {
    let dir = cache.join("kernels").join(s.name);
    if let Some(k) = unpacked(&dir.join("root")).filter(Kernel::has_module_deps) {
        eprintln!("ok: kernel {} ({}) cached in {}", s.name, k.release, dir.display());
        return Ok(k);
    }
    let mut suites: Vec<&str> = MATRIX.iter().flat_map(|s| s.suites.iter().copied()).collect();
    suites.sort_unstable();
    suites.dedup();
    let apt = Apt::new(cache.join("apt"), &suites, &["amd64", "arm64"])?;
    let pkg = apt.newest(s)?;
    eprintln!("downloading {pkg}...");
    let dl = dir.join("download");
    drop(fs::remove_dir_all(&dir));
    fs::create_dir_all(&dl).with_context(|| format!("cannot create {}", dl.display()))?;
    run(apt.cmd("apt-get").arg("download").arg(format!("{pkg}:{}", s.arch.debian())).current_dir(&dl))?;
    let deb = fs::read_dir(&dl)?
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download {pkg} left no .deb in {}", dl.display()))?;
    let tmp = dir.join("root.tmp");
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&tmp))?;
    let k = unpacked(&tmp).with_context(|| format!("{pkg} holds no boot/vmlinuz-* with its modules"))?;
    // The guest's modprobe needs modules.dep.
    run(Command::new("depmod").arg("-b").arg(&tmp).arg(&k.release))?;
    fs::rename(&tmp, dir.join("root"))?;
    fs::remove_dir_all(&dl)?;
    fs::write(dir.join("package"), format!("{pkg}\n"))?;
    eprintln!("did: cached {pkg} in {}", dir.display());
    Ok(Kernel { root: dir.join("root"), ..k })
}

/// The series whose guest gets netdevsim, built out of tree (the hardware-trap test).
const NETDEVSIM_SERIES: &str = "6.1";

/// Build (or find cached) netdevsim for `kernel`, next to the kernels' cache. A failure is a
/// warning: the hardware-trap test then says it found no module.
fn netdevsim_for(kernel: &Kernel, cache: &Path) {
    let parent = cache.parent().unwrap_or(cache);
    let download = |dir: &Path| -> Result<()> {
        let mut suites: Vec<&str> = MATRIX.iter().flat_map(|s| s.suites.iter().copied()).collect();
        suites.sort_unstable();
        suites.dedup();
        let apt = Apt::new(cache.join("apt"), &suites, &["amd64", "arm64"])?;
        let headers = format!("linux-headers-{}", kernel.release);
        let show = output(apt.cmd("apt-cache").args(["show", "--no-all-versions", &headers]))?;
        let version = show
            .lines()
            .find_map(|l| l.strip_prefix("Version: "))
            .with_context(|| format!("no version of {headers}"))?;
        run(apt
            .cmd("apt-get")
            .arg("download")
            .args(crate::netdevsim::packages(&kernel.release, version)?)
            .current_dir(dir))
    };
    if let Err(e) = crate::netdevsim::ensure(parent, &kernel.release, &download) {
        eprintln!("warning: no netdevsim for {}: {e:#}", kernel.release);
    }
}

/// The kernel unpacked at `root`, if it has an image and a module directory.
fn unpacked(root: &Path) -> Option<Kernel> {
    let release = fs::read_dir(root.join("lib/modules"))
        .ok()?
        .filter_map(std::result::Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()?;
    let k = Kernel { release, root: root.to_path_buf() };
    k.image().is_file().then_some(k)
}

/// apt with its own sources, lists and cache: reaches Debian suites of the given architectures
/// (the first its native one) without touching the host's apt configuration.
struct Apt {
    dir: PathBuf,
    archs: &'static [&'static str],
}

impl Apt {
    fn new(dir: PathBuf, suites: &[&str], archs: &'static [&'static str]) -> Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub)).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut sources = String::new();
        for suite in suites {
            let archive = if suite.ends_with("-security") { "debian-security" } else { "debian" };
            let _ = writeln!(
                sources,
                "deb [arch={} signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/{archive} {suite} main",
                archs.join(",")
            );
        }
        fs::write(dir.join("sources.list"), sources)?;
        let apt = Self { dir, archs };
        eprintln!("updating the private package lists in {}...", apt.dir.display());
        let mut update = apt.cmd("apt-get");
        update.args(["-q", "update"]).stdout(Stdio::null());
        run(&mut update)?;
        Ok(apt)
    }

    /// `tool` (apt-get or apt-cache) with this private configuration.
    fn cmd(&self, tool: &str) -> Command {
        let d = &self.dir;
        let mut c = Command::new(tool);
        for (k, v) in [
            ("Dir::Etc::SourceList", d.join("sources.list")),
            ("Dir::Etc::SourceParts", PathBuf::from("/dev/null")),
            ("Dir::Etc::Preferences", PathBuf::from("/dev/null")),
            ("Dir::Etc::PreferencesParts", PathBuf::from("/dev/null")),
            ("Dir::State::Lists", d.join("lists")),
            ("Dir::State::extended_states", d.join("extended_states")),
            ("Dir::Cache", d.join("cache")),
            ("Dir::State::status", PathBuf::from("/dev/null")),
        ] {
            c.arg("-o").arg(format!("{k}={}", v.display()));
        }
        if let Some(native) = self.archs.first() {
            c.arg("-o").arg(format!("APT::Architecture={native}"));
        }
        for a in self.archs {
            c.arg("-o").arg(format!("APT::Architectures::={a}"));
        }
        c.args(["-o", "Acquire::Languages=none"]);
        // Downloads land in directories `_apt` cannot write.
        c.args(["-o", "APT::Sandbox::User=root"]);
        c
    }

    /// The newest package of a series.
    fn newest(&self, s: &Series) -> Result<String> {
        let names = output(self.cmd("apt-cache").args(["pkgnames", s.prefix]))?;
        names
            .lines()
            .filter_map(|n| {
                let abi = n.strip_prefix(s.prefix)?.strip_suffix(s.suffix)?;
                if abi.contains('-') {
                    return None; // cloud, rt, ...
                }
                let key: u64 = abi.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()?;
                Some((key, n.to_string()))
            })
            .max()
            .map(|(_, n)| n)
            .with_context(|| format!("no {}*{} package in {}", s.prefix, s.suffix, s.suites.join(", ")))
    }
}

/// The static pktloss (checked to be static and of the right machine) and the test binaries of
/// an architecture.
fn binaries(arch: Arch) -> Result<Binaries> {
    let target = arch.musl_target();
    if !output(Command::new("rustup").args(["target", "list", "--installed"]))?.lines().any(|l| l.trim() == target) {
        run(Command::new("rustup").args(["target", "add", target]))?;
    }
    let pktloss = dist::static_binary(target)?;
    check_static(&pktloss, arch)?;
    let tests = test_binaries(arch)?;
    Ok(Binaries { pktloss, tests })
}

/// Fail unless `path` is an ELF executable of `arch` without a program interpreter (static).
fn check_static(path: &Path, arch: Arch) -> Result<()> {
    let elf = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| elf.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at = |o: usize| elf.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    // ELF64 little-endian: e_machine at 18, e_phoff at 32, e_phentsize and e_phnum at 54 and 56.
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        bail!("{} is not a 64-bit little-endian ELF file", path.display());
    }
    let machine = u16_at(18).unwrap_or(0);
    if machine != arch.elf_machine() {
        bail!("{} is for ELF machine {machine}, not {arch:?}", path.display());
    }
    let (phoff, phentsize, phnum) = (u64_at(32).unwrap_or(0), u16_at(54).unwrap_or(0), u16_at(56).unwrap_or(0));
    for i in 0..u64::from(phnum) {
        let at = usize::try_from(phoff + i * u64::from(phentsize)).context("program header offset")?;
        // PT_INTERP: a dynamic executable's loader.
        if u32_at(at) == Some(3) {
            bail!("{} has a program interpreter: it is not static", path.display());
        }
    }
    eprintln!("ok: {} is a static {arch:?} executable ({} bytes)", path.display(), elf.len());
    Ok(())
}

/// The integration-test binaries of the `tests` crate for `arch`, by name (`foundation`,
/// `diagnose`, ...): the host's build on x86-64 (those guests see the host's root and its libc),
/// the aarch64 musl target's (static) on arm64.
fn test_binaries(arch: Arch) -> Result<BTreeMap<String, PathBuf>> {
    let mut cmd = util::cargo();
    cmd.args(["test", "-p", "pktloss-tests", "--tests", "--no-run", "--message-format=json-render-diagnostics"]);
    if arch == Arch::Aarch64 {
        let target = arch.musl_target();
        cmd.args(["--target", target]);
        if env::consts::ARCH != "aarch64" {
            cmd.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "aarch64-linux-gnu-gcc");
        }
    }
    let out = output(&mut cmd)?;
    let mut bins = BTreeMap::new();
    for line in out.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if v["reason"] != "compiler-artifact" || v["target"]["kind"][0] != "test" {
            continue;
        }
        if let (Some(name), Some(exe)) = (v["target"]["name"].as_str(), v["executable"].as_str()) {
            bins.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    if bins.is_empty() {
        bail!("cargo built no integration-test binaries");
    }
    Ok(bins)
}

/// Where the guest finds the exchange directory (`run.sh`, the binaries under `bin/`).
const GUEST_XCHG: &str = "/run/xchg";

/// Put the binaries the guest runs into the exchange directory (hard links: the guest keeps its
/// own copy while the host rebuilds); returns pktloss's and the selected test binaries' guest
/// paths.
fn stage_binaries(
    bins: &Binaries,
    wanted: &[(String, String)],
    xchg: &Path,
) -> Result<(String, BTreeMap<String, String>)> {
    let dir = xchg.join("bin");
    fs::create_dir_all(&dir)?;
    let stage = |src: &Path, name: &str| -> Result<String> {
        let dst = dir.join(name);
        if fs::hard_link(src, &dst).is_err() {
            fs::copy(src, &dst).with_context(|| format!("copy {} to {}", src.display(), dst.display()))?;
        }
        Ok(format!("{GUEST_XCHG}/bin/{name}"))
    };
    let pktloss = stage(&bins.pktloss, "pktloss")?;
    let mut tests = BTreeMap::new();
    for (b, _) in wanted {
        if !tests.contains_key(b) {
            let exe = bins.tests.get(b).with_context(|| format!("no test binary {b}"))?;
            tests.insert(b.clone(), stage(exe, &format!("test-{b}"))?);
        }
    }
    Ok((pktloss, tests))
}

/// Every test of each test binary, by binary: its `--list`.
fn list_tests(bins: &BTreeMap<String, PathBuf>) -> Result<BTreeMap<String, Vec<String>>> {
    bins.iter()
        .map(|(b, exe)| {
            let out = output(Command::new(exe).args(["--list", "--format", "terse"]))
                .with_context(|| format!("listing the tests of {b}"))?;
            Ok((b.clone(), out.lines().filter_map(|l| l.strip_suffix(": test")).map(str::to_owned).collect()))
        })
        .collect()
}

/// Whether a test's full name carries a mark (is in that module or one inside it).
fn has_mark(test: &str, mark: &str) -> bool {
    test.strip_prefix(mark).is_some_and(|rest| rest.starts_with("::"))
}

/// The tests a guest runs, `(binary, full name)`: the series' marks, or the names given on the
/// command line (a full name or its last part). A mark or a name that selects nothing fails, so
/// a rename cannot silently empty the matrix.
fn wanted_tests(args: &VmArgs, s: &Series, listing: &BTreeMap<String, Vec<String>>) -> Result<Vec<(String, String)>> {
    let all = || listing.iter().flat_map(|(b, tests)| tests.iter().map(move |t| (b, t)));
    let mut wanted = Vec::new();
    if args.tests.is_empty() {
        for mark in s.marks {
            let before = wanted.len();
            wanted.extend(all().filter(|(_, t)| has_mark(t, mark)).map(|(b, t)| (b.clone(), t.clone())));
            if wanted.len() == before {
                bail!("the mark {mark:?} of the {} guest selects no test (no `mod {mark}` with tests)", s.name);
            }
        }
    } else {
        for name in &args.tests {
            let before = wanted.len();
            let suffix = format!("::{name}");
            wanted
                .extend(all().filter(|(_, t)| *t == name || t.ends_with(&suffix)).map(|(b, t)| (b.clone(), t.clone())));
            if wanted.len() == before {
                bail!("no test is named {name:?}");
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    Ok(wanted)
}

/// The shell script the guest runs after its root is mounted: mounts, then the test binaries
/// with the selected names, one at a time (each test's time reported), pktloss with a `PATH`
/// that holds no program.
fn guest_script(
    args: &VmArgs,
    wanted: &[(String, String)],
    pktloss: &str,
    tests: &BTreeMap<String, String>,
    cwd: &str,
) -> Result<String> {
    let mut s = String::from(
        "set -u\n\
         export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=true TERM=xterm\n\
         export PKTLOSS_TEST_SLOW=3  # emulated CPUs: tests that wait for pktloss wait longer\n\
         mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null\n\
         mount -t debugfs nodev /sys/kernel/debug 2>/dev/null\n\
         mount -t bpf bpf /sys/fs/bpf 2>/dev/null\n\
         mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null\n\
         ip link set lo up\n\
         echo \"guest: $(uname -r) $(uname -m), $(nproc) CPUs, kprobes $(test -e /sys/kernel/tracing/kprobe_events && echo yes || echo no)\"\n",
    );
    let _ = writeln!(s, "export PKTLOSS_BIN={}", sh_quote(pktloss));
    let _ = writeln!(s, "mkdir -p {EMPTY_PATH_DIR}\nexport PKTLOSS_CHILD_PATH={EMPTY_PATH_DIR}");
    let _ = writeln!(
        s,
        "echo \"guest: pktloss is $PKTLOSS_BIN ($(wc -c < \"$PKTLOSS_BIN\") bytes), run with PATH=$PKTLOSS_CHILD_PATH ($(ls -A $PKTLOSS_CHILD_PATH | wc -l) entries)\""
    );
    let _ = writeln!(s, "cd {}", sh_quote(cwd));
    if let Some(cmd) = &args.exec {
        s.push_str(cmd);
        s.push('\n');
        return Ok(s);
    }
    s.push_str("rc=0\n");
    let mut by_binary: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (b, t) in wanted {
        by_binary.entry(b).or_default().push(t);
    }
    for (b, names) in by_binary {
        let exe = tests.get(b).with_context(|| format!("no test binary {b}"))?;
        // `--report-time` is unstable in libtest; RUSTC_BOOTSTRAP lets a stable build take it.
        let _ = writeln!(
            s,
            "RUSTC_BOOTSTRAP=1 {} --test-threads=1 --color never -Z unstable-options --report-time --exact {} || rc=1",
            sh_quote(exe),
            names.iter().map(|n| sh_quote(n)).collect::<Vec<_>>().join(" ")
        );
    }
    s.push_str("exit $rc\n");
    Ok(s)
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The guest's `/init`: busybox, the boot modules, the overlay root, then the test script.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in /mods/*.ko; do insmod "$m" || echo "init: insmod $m failed"; done
fail() { echo "init: $*"; echo "PKTLOSS-VM-EXIT=125"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /lower || fail "cannot mount the host root"
mount -t tmpfs tmpfs /rw && mkdir /rw/up /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/up,workdir=/rw/work /newroot || fail "cannot mount the overlay root"
V=$(uname -r)
# The guest's own /run (the host's holds its namespaces and sockets).
mount -t tmpfs tmpfs /newroot/run
mkdir -p /newroot/lib/modules/$V /newroot/run/xchg
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 kmods /newroot/lib/modules/$V || fail "cannot mount the modules"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 xchg /newroot/run/xchg || fail "cannot mount the exchange directory"
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/dev/pts && mount -t devpts devpts /newroot/dev/pts
# /tmp stays the host's (under the overlay): the checkout may live there.
echo 1 > /proc/sys/kernel/panic_on_oops
# switch_root, not chroot: the kernel runs modprobe (module autoload) in init's root.
exec switch_root /newroot /bin/bash -c '/bin/bash /run/xchg/run.sh; echo "PKTLOSS-VM-EXIT=$?"; /bin/busybox poweroff -f'
"#;

/// Build the initramfs of a kernel (the guest root's busybox, the boot modules decompressed,
/// `/init`).
fn initramfs(k: &Kernel, dir: &Path, root: &Path) -> Result<PathBuf> {
    let tree = dir.join("initramfs");
    for d in ["bin", "proc", "sys", "dev", "lower", "rw", "newroot", "mods"] {
        fs::create_dir_all(tree.join(d))?;
    }
    let busybox = root.join("bin/busybox");
    fs::copy(&busybox, tree.join("bin/busybox"))
        .with_context(|| format!("copy {} (busybox-static)", busybox.display()))?;
    let mut order: Vec<String> = Vec::new();
    for m in BOOT_MODULES {
        let deps =
            output(Command::new("modprobe").arg("-d").arg(&k.root).args(["-S", &k.release, "--show-depends", m]))?;
        for line in deps.lines() {
            if let Some(path) = line.strip_prefix("insmod ") {
                let path = path.split_whitespace().next().unwrap_or(path).to_string();
                if !order.contains(&path) {
                    order.push(path);
                }
            }
        }
    }
    for (i, path) in order.iter().enumerate() {
        let p = Path::new(path);
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let base = name.trim_end_matches(".xz").trim_end_matches(".zst").trim_end_matches(".gz");
        let dst = tree.join("mods").join(format!("{i:02}-{base}"));
        let tool = match p.extension().and_then(|e| e.to_str()) {
            Some("xz") => Some("xz"),
            Some("zst") => Some("zstd"),
            Some("gz") => Some("gzip"),
            _ => None,
        };
        match tool {
            Some(t) => {
                let out = Command::new(t).args(["-dc"]).arg(p).output().with_context(|| format!("{t} -dc"))?;
                if !out.status.success() {
                    bail!("{t} -dc {} failed", p.display());
                }
                fs::write(&dst, out.stdout)?;
            }
            None => {
                fs::copy(p, &dst).with_context(|| format!("copy {}", p.display()))?;
            }
        }
    }
    let init = tree.join("init");
    fs::write(&init, INIT)?;
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755))?;
    let cpio = dir.join("initramfs.cpio");
    let list = output(Command::new("find").arg(".").current_dir(&tree))?;
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&tree)
        .stdin(Stdio::piped())
        .stdout(fs::File::create(&cpio)?)
        .spawn()
        .context("cannot start cpio")?;
    child.stdin.take().context("cpio stdin")?.write_all(list.as_bytes())?;
    if !child.wait()?.success() {
        bail!("cpio failed");
    }
    Ok(cpio)
}

/// Boot one kernel, stream its console with a `[vm RELEASE]` prefix, and return the test
/// totals; fails on a guest failure, a timeout or no test run.
fn boot(
    args: &VmArgs,
    s: &Series,
    k: &Kernel,
    bins: &Binaries,
    wanted: &[(String, String)],
    cache: &Path,
) -> Result<Totals> {
    let work = util::target_dir().join("vm").join(&k.release);
    drop(fs::remove_dir_all(&work));
    let xchg = work.join("xchg");
    fs::create_dir_all(&xchg)?;
    // x86_64 guests see the host's `/` (and the checkout where it is); arm64 its own root.
    let (root, cwd) = match s.arch {
        Arch::X86_64 => (PathBuf::from("/"), util::workspace_root().join("tests").to_string_lossy().into_owned()),
        Arch::Aarch64 => (arm64_root(cache)?, GUEST_XCHG.to_owned()),
    };
    let (pktloss, tests) = stage_binaries(bins, wanted, &xchg)?;
    fs::write(xchg.join("run.sh"), guest_script(args, wanted, &pktloss, &tests, &cwd)?)?;
    let initrd = initramfs(k, &work, &root)?;
    let share = |id: &str, path: &Path, tag: &str, ro: bool| {
        [
            "-fsdev".to_string(),
            format!(
                "local,id={id},path={},security_model=none,multidevs=remap{}",
                path.display(),
                if ro { ",readonly=on" } else { "" }
            ),
            "-device".to_string(),
            format!("virtio-9p-pci,fsdev={id},mount_tag={tag}"),
        ]
    };
    let (qemu, machine) = s.arch.qemu();
    let mut cmd = Command::new(qemu);
    cmd.args(["-accel", "tcg"])
        .args(machine)
        .args(["-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio"])
        .args(["-m", &args.memory_mib.to_string(), "-smp", &args.cpus.to_string()])
        .arg("-kernel")
        .arg(k.image())
        .arg("-initrd")
        .arg(&initrd)
        .arg("-append")
        .arg(format!("console={} rdinit=/init panic=-1 quiet loglevel=3", s.arch.console()))
        .args(share("root", &root, "hostroot", true))
        .args(share("kmods", &k.modules(), "kmods", true))
        .args(share("xchg", &xchg, "xchg", false))
        .args(if s.name == NIC_SERIES { NIC_ARGS } else { &[] })
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("booting {} ({} CPUs, {} MiB): {}", k.release, args.cpus, args.memory_mib, show(&cmd));
    let mut child = cmd.spawn().with_context(|| format!("cannot start {qemu}"))?;
    let (tx, rx) = mpsc::channel::<String>();
    for pipe in [
        child.stdout.take().map(|p| -> Box<dyn std::io::Read + Send> { Box::new(p) }),
        child.stderr.take().map(|p| -> Box<dyn std::io::Read + Send> { Box::new(p) }),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let tag = format!("[vm {}]", k.release);
    let mut totals = Totals::default();
    let mut exit = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r');
                println!("{tag} {line}");
                totals.add_line(line);
                if let Some(code) = line.strip_prefix(EXIT_MARKER) {
                    exit = code.trim().parse::<i32>().ok();
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                drop(child.kill());
                drop(child.wait());
                bail!("timed out after {} s", args.timeout_secs);
            }
        }
    }
    let status = child.wait().context("qemu")?;
    match exit {
        None => bail!("the guest stopped without an exit code (qemu: {status})"),
        Some(0) if args.exec.is_some() => Ok(totals),
        Some(0) if totals.failed == 0 && totals.passed > 0 => {
            let want = wanted.len() as u64;
            if totals.passed < want {
                bail!("{} of the {want} selected tests ran", totals.passed);
            }
            Ok(totals)
        }
        Some(0) if totals.passed == 0 => bail!("no test ran"),
        Some(code) => bail!("{} passed, {} failed (guest exit code {code})", totals.passed, totals.failed),
    }
}

/// The arm64 guest's root: Debian 12 arm64's essential and required packages (what debootstrap's
/// `minbase` installs) with [`ARM64_ROOT_PACKAGES`] and all they depend on, downloaded by a
/// private arm64 apt and unpacked into a merged-`/usr` tree; made once and cached, made again
/// when the package list changes. No maintainer script runs (they are arm64 programs): the few
/// files of theirs that the tests need are written here.
fn arm64_root(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("roots/arm64-unpacked");
    let stamp = cache.join("roots/arm64-unpacked.packages");
    let want = ARM64_ROOT_PACKAGES.join(",");
    if dir.join("bin/busybox").exists() && fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want) {
        eprintln!("ok: arm64 root cached in {}", dir.display());
        return Ok(dir);
    }
    let started = Instant::now();
    let tmp = cache.join("roots/arm64-unpacked.tmp");
    drop(fs::remove_dir_all(&tmp));
    drop(fs::remove_dir_all(&dir));
    eprintln!("making the arm64 root in {}...", dir.display());
    let apt = Apt::new(cache.join("roots/apt-arm64"), ARM64_SUITES, &["arm64"])?;
    let mut names = base_packages(&output(apt.cmd("apt-cache").arg("dumpavail"))?);
    names.extend(ARM64_ROOT_PACKAGES.iter().map(|p| (*p).to_owned()));
    let archives = apt.dir.join("cache/archives");
    for deb in debs(&archives)? {
        fs::remove_file(deb)?;
    }
    let mut download = apt.cmd("apt-get");
    download
        .args(["-q", "-y", "--download-only", "--no-install-recommends", "install"])
        .args(&names)
        .stdout(Stdio::null());
    run(&mut download)?;
    // Merged /usr, as Debian 12's debootstrap makes it; tar keeps these links (the packages
    // still hold files under /bin, /sbin and /lib).
    for d in ["bin", "sbin", "lib"] {
        fs::create_dir_all(tmp.join("usr").join(d)).with_context(|| format!("cannot create {}", tmp.display()))?;
        std::os::unix::fs::symlink(format!("usr/{d}"), tmp.join(d))?;
    }
    let debs = debs(&archives)?;
    for deb in &debs {
        unpack(deb, &tmp)?;
        fs::remove_file(deb)?;
    }
    finish_root(&tmp)?;
    fs::rename(&tmp, &dir)?;
    fs::write(&stamp, format!("{want}\n"))?;
    eprintln!(
        "did: made the arm64 root ({} packages) in {} s: {}",
        debs.len(),
        started.elapsed().as_secs(),
        dir.display()
    );
    Ok(dir)
}

/// The Debian suites of the arm64 guest (its kernel and its root).
const ARM64_SUITES: &[&str] = &["bookworm", "bookworm-security"];

/// The essential and required packages in `apt-cache dumpavail`'s records.
fn base_packages(avail: &str) -> Vec<String> {
    let mut names: Vec<String> = avail
        .split("\n\n")
        .filter(|r| r.lines().any(|l| l == "Essential: yes" || l == "Priority: required"))
        .filter_map(|r| r.lines().find_map(|l| l.strip_prefix("Package: ")).map(str::to_owned))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The `.deb` files in a directory.
fn debs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut debs: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort_unstable();
    Ok(debs)
}

/// Unpack a package's files into `root` (`dpkg-deb --fsys-tarfile | tar -x`, keeping the
/// merged-/usr links that `dpkg-deb -x`'s tar would replace by directories).
fn unpack(deb: &Path, root: &Path) -> Result<()> {
    let mut data = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start dpkg-deb")?;
    let tar = Command::new("tar")
        .args(["-x", "--keep-directory-symlink", "--same-owner", "--same-permissions", "-C"])
        .arg(root)
        .stdin(data.stdout.take().context("dpkg-deb stdout")?)
        .status()
        .context("cannot start tar")?;
    if !data.wait()?.success() || !tar.success() {
        bail!("cannot unpack {}", deb.display());
    }
    Ok(())
}

/// What the maintainer scripts would have made that the guest needs: users and groups, name
/// lookups, the mount points, `/tmp`, the `awk` alternative.
fn finish_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for (file, master) in [("passwd", "passwd.master"), ("group", "group.master")] {
        let from = root.join("usr/share/base-passwd").join(master);
        fs::copy(&from, root.join("etc").join(file)).with_context(|| format!("copy {}", from.display()))?;
    }
    fs::write(
        root.join("etc/nsswitch.conf"),
        "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n",
    )?;
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")?;
    for (d, mode) in [
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("run", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("var/tmp", 0o1777),
    ] {
        let p = root.join(d);
        fs::create_dir_all(&p)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    }
    let awk = root.join("usr/bin/awk");
    if awk.symlink_metadata().is_err() && root.join("usr/bin/mawk").exists() {
        std::os::unix::fs::symlink("mawk", awk)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::has_mark;

    #[test]
    fn a_mark_is_a_module_path() {
        assert!(has_mark("matrix::udp4", "matrix") && has_mark("matrix::arm64::udp4", "matrix"));
        assert!(has_mark("matrix::arm64::udp4", "matrix::arm64") && !has_mark("matrix::udp4", "matrix::arm64"));
        assert!(!has_mark("matrix_once::x", "matrix") && !has_mark("matrixy", "matrix"));
    }
}
