//! `cargo xtask vm-test`: the real-kernel portability tests inside qemu guests booted with
//! Debian's own kernels (the kernel matrix).
//!
//! Each guest boots an unpacked Debian `linux-image-*-amd64-unsigned` package under qemu TCG
//! (the nested KVM of these machines cannot run stock kernels) with a busybox initramfs that
//! loads the 9p and overlay modules of that kernel, mounts the host's `/` read-only over 9p
//! under a tmpfs overlay, binds the kernel's own modules at `/lib/modules/$(uname -r)`, and runs
//! the workspace's integration-test binaries (built on the host) with the portability tests
//! selected by name. Nothing is installed in the guest: it sees the host's tools and binaries.
//!
//! Kernels are cached outside the clone (`$XDG_CACHE_HOME/pktloss/vm`, else
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
    setup::{self, Scope},
    tasks::{self, Totals},
    util::{self, output, run, show},
};

/// A kernel series of the matrix and where its Debian package comes from.
struct Series {
    /// What `--kernel` takes.
    name: &'static str,
    /// Debian suites that carry it (the private apt config lists these).
    suites: &'static [&'static str],
    /// The package name is `PREFIX<abi>SUFFIX`, `<abi>` a version without `-` (e.g. `57`,
    /// `118+deb12`); the newest ABI is taken.
    prefix: &'static str,
    suffix: &'static str,
}

/// The kernels of the matrix besides the host's own: Debian 11, Debian 12, Debian 12
/// security / Debian 13.
const MATRIX: &[Series] = &[
    Series {
        name: "5.10",
        suites: &["bullseye", "bullseye-security"],
        prefix: "linux-image-5.10.0-",
        suffix: "-amd64-unsigned",
    },
    Series {
        name: "6.1",
        suites: &["bookworm", "bookworm-security"],
        prefix: "linux-image-6.1.0-",
        suffix: "-amd64-unsigned",
    },
    Series {
        name: "6.12",
        suites: &["bookworm", "bookworm-security"],
        prefix: "linux-image-6.12.",
        suffix: "-amd64-unsigned",
    },
];

/// The tests that matter for portability, run in every guest (`binary::name`). Each must run:
/// a name that matches nothing fails the matrix, so a rename cannot silently empty it.
pub(crate) const PORTABILITY_TESTS: &[(&str, &str)] = &[
    ("foundation", "udp4_no_socket_exact"),
    ("foundation", "udp6_no_socket_exact"),
    ("foundation", "udp4_no_socket_exact_classic_tracepoint"),
    ("foundation", "udp6_no_socket_exact_classic_tracepoint"),
    ("foundation", "udp4_no_socket_exact_counters_only"),
    ("foundation", "nftables_drop_rule_exact"),
    ("foundation", "every_flag_variant_loads"),
    ("foundation", "attach_modes_are_reported"),
    ("foundation", "nothing_stays_loaded_after_exit_sigterm_sigkill"),
    ("foundation", "bad_input_is_one_line_and_exit_2"),
    ("foundation", "missing_kernel_features_are_clear_errors"),
    ("foundation", "verifier_rejection_is_one_line_with_the_log_in_a_file"),
    ("foundation", "reasons_come_from_the_running_kernel"),
    ("foundation", "every_drop_reason_is_classified"),
    ("diagnose", "no_listener_is_the_top_cause_with_exact_drops"),
    ("diagnose", "firewall_drop_names_the_rule"),
    ("diagnose", "tcp_syn_queue_full_without_cookies"),
    ("diagnose", "tc_program_drops_are_counted_once"),
    ("diagnose", "external_loss_from_a_lossy_path"),
    ("diagnose", "socket_memory_pressure_names_the_starved_receiver"),
    ("tui", "tui_shows_real_drops_and_quits_clean"),
    ("serve", "prometheus_reads_exact_drops_and_causes"),
    ("caps", "each_missing_capability_is_one_line"),
    ("caps", "serve_keeps_only_what_it_needs"),
    ("filter", "each_filter_counts_exactly_its_drops"),
    ("filter", "a_bad_filter_is_one_line_and_exit_2"),
    ("firewall", "nft_drop_names_the_base_chain_and_the_jump_target"),
    ("firewall", "iptables_nft_and_legacy_drops_name_the_chain"),
    ("firewall", "dnat_drop_shows_the_original_destination"),
    ("dropwatch", "dropwatch_counts_the_same_drops_per_location"),
];

/// Modules the initramfs loads (with what they depend on) before it can mount the root.
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];

/// Marker the guest's init prints with the exit code of the test script.
const EXIT_MARKER: &str = "PKTLOSS-VM-EXIT=";

const DEFAULT_CPUS: u32 = 2;
const DEFAULT_MEMORY_MIB: u32 = 2048;
const DEFAULT_TIMEOUT_SECS: u64 = 1500;

#[derive(clap::Args)]
pub(crate) struct VmArgs {
    /// Kernel series to boot (comma-separated): 5.10, 6.1, 6.12, or all.
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
    /// Test names to run instead of the portability set (exact names, any test binary).
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
            tests: Vec::new(),
        }
    }
}

/// `vm-test`: setup, debug build, then every selected kernel in turn; fails if any guest does.
pub(crate) fn vm_test(args: VmArgs) -> Result<()> {
    setup::setup(Scope::All)?;
    tasks::cargo_build(false)?;
    let binaries = test_binaries()?;
    run_matrix(&args, &binaries)
}

/// Boot the selected kernels with already-built test binaries (`name -> path`).
pub(crate) fn run_matrix(args: &VmArgs, binaries: &BTreeMap<String, PathBuf>) -> Result<()> {
    let series = select(&args.kernel)?;
    let cache = cache_dir();
    let started = Instant::now();
    let mut failed = Vec::new();
    let mut lines = Vec::new();
    for s in series {
        let t = Instant::now();
        let kernel = kernel(s, &cache).with_context(|| format!("kernel {}", s.name))?;
        let result = boot(args, &kernel, binaries);
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
    let apt = Apt::new(cache.join("apt"))?;
    let pkg = apt.newest(s)?;
    eprintln!("downloading {pkg}...");
    let dl = dir.join("download");
    drop(fs::remove_dir_all(&dir));
    fs::create_dir_all(&dl).with_context(|| format!("cannot create {}", dl.display()))?;
    run(apt.cmd("apt-get").arg("download").arg(&pkg).current_dir(&dl))?;
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

/// apt with its own sources, lists and cache: reaches Debian 11 and 12 without touching the
/// host's apt configuration.
struct Apt {
    dir: PathBuf,
}

impl Apt {
    fn new(dir: PathBuf) -> Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(dir.join(sub)).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut sources = String::new();
        let mut suites: Vec<&str> = MATRIX.iter().flat_map(|s| s.suites.iter().copied()).collect();
        suites.sort_unstable();
        suites.dedup();
        for suite in suites {
            let archive = if suite.ends_with("-security") { "debian-security" } else { "debian" };
            let _ = writeln!(
                sources,
                "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/{archive} {suite} main"
            );
        }
        fs::write(dir.join("sources.list"), sources)?;
        let apt = Self { dir };
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
            ("Dir::State::Lists", d.join("lists")),
            ("Dir::Cache", d.join("cache")),
            ("Dir::State::status", PathBuf::from("/dev/null")),
        ] {
            c.arg("-o").arg(format!("{k}={}", v.display()));
        }
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

/// The integration-test binaries of the `tests` crate, by name (`foundation`, `diagnose`, ...).
pub(crate) fn test_binaries() -> Result<BTreeMap<String, PathBuf>> {
    let out = output(util::cargo().args([
        "test",
        "-p",
        "pktloss-tests",
        "--tests",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]))?;
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

/// The shell script the guest runs after its root is mounted: mounts, then the test binaries
/// with the selected names, one at a time.
fn guest_script(args: &VmArgs, binaries: &BTreeMap<String, PathBuf>) -> Result<String> {
    let bin = tasks::pktloss_bin(false);
    let mut s = String::from(
        "set -u\n\
         export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=true TERM=xterm\n\
         export PKTLOSS_TEST_SLOW=3  # emulated CPUs: tests that wait for pktloss wait longer\n\
         mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null\n\
         mount -t debugfs nodev /sys/kernel/debug 2>/dev/null\n\
         mount -t bpf bpf /sys/fs/bpf 2>/dev/null\n\
         mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null\n\
         ip link set lo up\n\
         echo \"guest: $(uname -r), $(nproc) CPUs, kprobes $(test -e /sys/kernel/tracing/kprobe_events && echo yes || echo no)\"\n",
    );
    let _ = writeln!(s, "export PKTLOSS_BIN={}", sh_quote(&bin.to_string_lossy()));
    let _ = writeln!(s, "cd {}", sh_quote(&util::workspace_root().join("tests").to_string_lossy()));
    if let Some(cmd) = &args.exec {
        s.push_str(cmd);
        s.push('\n');
        return Ok(s);
    }
    s.push_str("rc=0\n");
    let custom: Vec<(String, String)>;
    let selected: Vec<(&str, &str)> = if args.tests.is_empty() {
        PORTABILITY_TESTS.to_vec()
    } else {
        custom = binaries.keys().flat_map(|b| args.tests.iter().map(move |t| (b.clone(), t.clone()))).collect();
        custom.iter().map(|(b, t)| (b.as_str(), t.as_str())).collect()
    };
    let mut by_binary: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (b, t) in selected {
        by_binary.entry(b).or_default().push(t);
    }
    for (b, names) in by_binary {
        let exe = binaries.get(b).with_context(|| format!("no test binary {b}"))?;
        let _ = writeln!(
            s,
            "{} --test-threads=1 --color never --exact {} || rc=1",
            sh_quote(&exe.to_string_lossy()),
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

/// Build the initramfs of a kernel (busybox, the boot modules decompressed, `/init`).
fn initramfs(k: &Kernel, dir: &Path) -> Result<PathBuf> {
    let tree = dir.join("initramfs");
    for d in ["bin", "proc", "sys", "dev", "lower", "rw", "newroot", "mods"] {
        fs::create_dir_all(tree.join(d))?;
    }
    fs::copy("/bin/busybox", tree.join("bin/busybox")).context("copy /bin/busybox (busybox-static)")?;
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
fn boot(args: &VmArgs, k: &Kernel, binaries: &BTreeMap<String, PathBuf>) -> Result<Totals> {
    let work = util::target_dir().join("vm").join(&k.release);
    drop(fs::remove_dir_all(&work));
    let xchg = work.join("xchg");
    fs::create_dir_all(&xchg)?;
    fs::write(xchg.join("run.sh"), guest_script(args, binaries)?)?;
    let initrd = initramfs(k, &work)?;
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
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio"])
        .args(["-m", &args.memory_mib.to_string(), "-smp", &args.cpus.to_string()])
        .arg("-kernel")
        .arg(k.image())
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 rdinit=/init panic=-1 quiet loglevel=3"])
        .args(share("root", Path::new("/"), "hostroot", true))
        .args(share("kmods", &k.modules(), "kmods", true))
        .args(share("xchg", &xchg, "xchg", false))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("booting {} ({} CPUs, {} MiB): {}", k.release, args.cpus, args.memory_mib, show(&cmd));
    let mut child = cmd.spawn().context("cannot start qemu-system-x86_64")?;
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
            let want = if args.tests.is_empty() { PORTABILITY_TESTS.len() as u64 } else { totals.passed };
            if totals.passed < want {
                bail!("{} of the {want} portability tests ran", totals.passed);
            }
            Ok(totals)
        }
        Some(0) if totals.passed == 0 => bail!("no test ran"),
        Some(code) => bail!("{} passed, {} failed (guest exit code {code})", totals.passed, totals.failed),
    }
}
