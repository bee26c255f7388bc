//! `cargo xtask dist-test`: the release files on real systems. The .deb passes lintian, installs
//! with `dpkg -i` in a Debian 12 root (`debootstrap --variant=minbase`, cached under
//! `~/.cache/pktloss`) booted by `systemd-nspawn --boot`, where `systemctl enable --now pktloss`
//! serves the exact count of drops made in a namespace of the host, and `dpkg -r`/`--purge`
//! leave nothing; the OCI image, loaded by `podman load`, runs with only the `DaemonSet`'s
//! capabilities and host network and PID namespaces, and serves the exact count too.
use std::{
    fs,
    io::{Read as _, Write as _},
    net::{TcpStream, UdpSocket},
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    dist::{self, VERSION},
    setup::{self, Scope},
    util::{self, output, run, show},
};

/// Datagrams sent to a closed port in the test namespace (each one a `NO_SOCKET` drop).
const DROPS: usize = 57;

/// `dist-test`: build the release files, then the .deb and the image tests; prints the times.
pub(crate) fn dist_test() -> Result<()> {
    if !util::is_root() {
        bail!("dist-test needs root (debootstrap, systemd-nspawn, podman, BPF)");
    }
    setup::setup(Scope::All)?;
    let t = Instant::now();
    dist::dist()?;
    let dist_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    lintian()?;
    let lintian_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    deb_in_nspawn()?;
    let deb_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    oci_in_podman()?;
    let oci_s = t.elapsed().as_secs_f64();
    println!(
        "dist-test: passed (dist {dist_s:.0} s, lintian {lintian_s:.0} s, .deb in nspawn {deb_s:.0} s, image in podman {oci_s:.0} s)"
    );
    Ok(())
}

fn dist_file(name: &str) -> PathBuf {
    util::target_dir().join("dist").join(name)
}

fn host_deb() -> Result<PathBuf> {
    let arch = dist::ARCHES
        .iter()
        .find(|a| a.triple.starts_with(std::env::consts::ARCH))
        .context("no release architecture for this host")?;
    Ok(dist_file(&format!("pktloss_{VERSION}-1_{}.deb", arch.deb)))
}

/// lintian on both .debs: no error (warnings are printed).
fn lintian() -> Result<()> {
    for arch in &dist::ARCHES {
        let deb = dist_file(&format!("pktloss_{VERSION}-1_{}.deb", arch.deb));
        let mut cmd = Command::new("lintian");
        cmd.args(["--fail-on", "error", "--display-info"]).arg(&deb);
        let out = cmd.output().with_context(|| format!("cannot start `{}`", show(&cmd)))?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            bail!("lintian finds errors in {}: {}", deb.display(), String::from_utf8_lossy(&out.stderr).trim());
        }
        println!("dist-test: lintian {}: no error", deb.display());
    }
    Ok(())
}

/// A network namespace made with `ip netns add`, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Result<Self> {
        let name = format!("pktl-{tag}-{}", std::process::id());
        // One left by a killed run.
        util::succeeds(Command::new("ip").args(["netns", "del", &name]));
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Self { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    fn inode(&self) -> Result<u64> {
        Ok(fs::metadata(format!("/run/netns/{}", self.name)).context("namespace file")?.ino())
    }

    /// Send `n` datagrams to a closed port from inside the namespace; the kernel's own count
    /// of them (the Udp `NoPorts` delta of the namespace).
    fn drops_to_closed_port(&self, n: usize) -> Result<u64> {
        let path = format!("/run/netns/{}", self.name);
        thread::spawn(move || -> Result<u64> {
            let file = fs::File::open(&path).with_context(|| format!("open {path}"))?;
            // SAFETY: setns on a valid namespace fd; it changes only this thread's namespace.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns {path}: {}", std::io::Error::last_os_error());
            }
            let before = udp_noports()?;
            let socket = UdpSocket::bind("127.0.0.1:0").context("bind UDP in the namespace")?;
            for i in 0..n {
                socket.send_to(format!("pktloss dist-test {i}").as_bytes(), "127.0.0.1:9").context("send")?;
            }
            Ok(udp_noports()? - before)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the sender thread panicked"))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        util::succeeds(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Udp `NoPorts` of the calling thread's network namespace.
fn udp_noports() -> Result<u64> {
    let snmp = fs::read_to_string("/proc/thread-self/net/snmp").context("read /proc/thread-self/net/snmp")?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else { bail!("no Udp lines in snmp") };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(k, _)| *k == "NoPorts")
        .and_then(|(_, v)| v.parse().ok())
        .context("no Udp NoPorts")
}

/// One scrape of `http://ADDR/metrics` (None while nothing answers 200).
fn scrape(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.1 200").then_some(body)
}

/// `pktloss_netns_drops_total` of reason `NO_SOCKET` for the namespace (by name or inode).
fn netns_no_socket(body: &str, ns: &Netns, inode: u64) -> u64 {
    let labels = [format!("netns=\"{}\"", ns.name), format!("netns=\"netns:{inode}\"")];
    body.lines()
        .filter(|l| l.starts_with("pktloss_netns_drops_total{") && l.contains("reason=\"NO_SOCKET\""))
        .filter(|l| labels.iter().any(|x| l.contains(x.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Wait (bounded) until serve answers, make the drops, wait until its series says the kernel's
/// count; fail with what it said.
fn exact_count(addr: &str, ns: &Netns, what: &str, alive: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_mins(1);
    while scrape(addr).is_none() {
        alive()?;
        if Instant::now() > deadline {
            bail!("{what}: nothing answers at http://{addr}/metrics after 60 s");
        }
        thread::sleep(Duration::from_millis(250));
    }
    let inode = ns.inode()?;
    let noports = ns.drops_to_closed_port(DROPS)?;
    if noports != DROPS as u64 {
        bail!("{what}: the kernel counted {noports} NoPorts for {DROPS} datagrams");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = 0;
    while Instant::now() < deadline {
        got = scrape(addr).map_or(0, |b| netns_no_socket(&b, ns, inode));
        if got >= noports {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    if got != noports {
        bail!("{what}: /metrics says {got} NO_SOCKET drops in {}, the kernel's NoPorts {noports}", ns.name);
    }
    println!("dist-test: {what}: {got} NO_SOCKET drops at /metrics = the namespace's NoPorts delta");
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0").context("bind")?.local_addr()?.port())
}

/// The cached Debian 12 minbase root with systemd (made once, ~1-3 minutes of downloads).
fn bookworm_root() -> Result<PathBuf> {
    let cache = util::home().join(".cache/pktloss");
    let root = cache.join("bookworm-minbase");
    if root.join("usr/lib/systemd/systemd").exists() {
        return Ok(root);
    }
    let tmp = cache.join("bookworm-minbase.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let t = Instant::now();
    eprintln!("dist-test: debootstrap --variant=minbase bookworm into {} (once)...", root.display());
    run(Command::new("debootstrap")
        .args(["--variant=minbase", "--include=systemd,systemd-sysv,dbus", "bookworm"])
        .arg(&tmp)
        .arg("http://deb.debian.org/debian"))?;
    fs::rename(&tmp, &root).with_context(|| format!("cannot move {} to {}", tmp.display(), root.display()))?;
    eprintln!("dist-test: debootstrap took {:.0} s", t.elapsed().as_secs_f64());
    Ok(root)
}

/// A booted container of a copy of the cached root; killed and removed on drop.
struct Nspawn {
    child: Child,
    root: PathBuf,
    leader: u32,
}

impl Nspawn {
    fn boot(cached: &Path) -> Result<Self> {
        let root = util::target_dir().join("dist-test/root");
        if root.exists() {
            fs::remove_dir_all(&root).with_context(|| format!("cannot remove {}", root.display()))?;
        }
        fs::create_dir_all(root.parent().unwrap_or(&root)).context("dist-test dir")?;
        run(Command::new("cp").args(["-a", "--reflink=auto"]).arg(cached).arg(&root))?;
        let log = fs::File::create(util::target_dir().join("dist-test/nspawn.log")).context("nspawn log")?;
        let mut cmd = Command::new("systemd-nspawn");
        cmd.args(["--boot", "--quiet", "--register=no", "--keep-unit", "--console=passive"])
            .arg("--directory")
            .arg(&root)
            .arg(format!("--machine=pktloss-dist-{}", std::process::id()))
            // The service's capabilities (CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH
            // are in nspawn's default set) and its system calls; the host's network namespace.
            .args(["--capability=CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN,CAP_SYSLOG"])
            .args(["--system-call-filter=bpf perf_event_open"])
            .args(["--bind-ro=/sys/kernel/tracing", "--bind-ro=/run/netns"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log")?)
            .stderr(log);
        eprintln!("running: {}", show(&cmd));
        let mut child = cmd.spawn().context("cannot start systemd-nspawn")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let leader = loop {
            if let Some(pid) = container_init(child.id()) {
                break pid;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "systemd-nspawn exited ({status}): see {}",
                    util::target_dir().join("dist-test/nspawn.log").display()
                );
            }
            if Instant::now() > deadline {
                drop(child.kill());
                bail!("no container init after 30 s");
            }
            thread::sleep(Duration::from_millis(100));
        };
        let c = Self { child, root, leader };
        // Booted: `systemctl is-system-running` says running (or degraded), bounded.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let state = c.stdout(&["systemctl", "is-system-running"]);
            if state.contains("running") || state.contains("degraded") {
                break;
            }
            if Instant::now() > deadline {
                bail!("the container did not boot in 90 s (state {state:?})");
            }
            thread::sleep(Duration::from_millis(250));
        }
        Ok(c)
    }

    /// A command run in the container (its namespaces, root and working directory).
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.leader.to_string(), "-m", "-u", "-i", "-p", "-r", "-w", "--"])
            .args(["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"])
            .args(args);
        cmd
    }

    /// Run a command in the container; its stdout, an error if it fails.
    fn exec(&self, args: &[&str]) -> Result<String> {
        output(&mut self.command(args))
    }

    /// Run a command in the container; its stdout whatever its exit status.
    fn stdout(&self, args: &[&str]) -> String {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .map_or_else(|e| format!("cannot run {args:?}: {e}"), |o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("systemd-nspawn exited ({status})");
        }
        Ok(())
    }
}

impl Drop for Nspawn {
    fn drop(&mut self) {
        drop(self.exec(&["systemctl", "poweroff"]));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(100));
        }
        drop(self.child.kill());
        drop(self.child.wait());
        drop(fs::remove_dir_all(&self.root));
    }
}

/// The PID (host view) of the container's systemd: a child of `nspawn` (nspawn's own children
/// are not named `systemd`).
fn container_init(nspawn: u32) -> Option<u32> {
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let ppid = stat.rsplit(')').next().and_then(|s| s.split_whitespace().nth(1)).and_then(|s| s.parse().ok());
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if ppid == Some(nspawn) && comm.trim() == "systemd" {
            return Some(pid);
        }
    }
    None
}

/// Every path of the container's root, minus what runs and logs change by themselves.
fn tree(c: &Nspawn) -> Result<Vec<String>> {
    let list = c.exec(&["find", "/", "-xdev", "-path", "/proc", "-prune", "-o", "-print"])?;
    let volatile = ["/var/log/", "/var/cache/", "/var/lib/dpkg/", "/var/lib/systemd/", "/tmp/", "/var/tmp/", "/run/"];
    Ok(list.lines().filter(|p| !volatile.iter().any(|v| p.starts_with(v))).map(str::to_string).collect())
}

/// The .deb in a booted Debian 12 root.
fn deb_in_nspawn() -> Result<()> {
    let deb = host_deb()?;
    let cached = bookworm_root()?;
    // Made before the container starts so that /run/netns (bound read-only) shows it.
    let ns = Netns::new("deb")?;
    let mut c = Nspawn::boot(&cached)?;
    let before = tree(&c)?;
    fs::copy(&deb, c.root.join("root/pktloss.deb")).context("copy the .deb into the root")?;
    c.exec(&["dpkg", "-i", "/root/pktloss.deb"])?;
    fs::remove_file(c.root.join("root/pktloss.deb")).context("remove the copied .deb")?;
    let enabled = c.stdout(&["systemctl", "is-enabled", "pktloss"]);
    if enabled.trim() != "disabled" {
        bail!("after dpkg -i the unit is not 'disabled': {enabled}");
    }
    // The administrator's drop-in: a free port and per-namespace series.
    let port = free_port()?;
    let dropin = c.root.join("etc/systemd/system/pktloss.service.d");
    fs::create_dir_all(&dropin).context("drop-in dir")?;
    fs::write(
        dropin.join("test.conf"),
        format!("[Service]\nExecStart=\nExecStart=/usr/bin/pktloss serve --listen 127.0.0.1:{port} --netns-labels\n"),
    )
    .context("drop-in")?;
    c.exec(&["systemctl", "daemon-reload"])?;
    c.exec(&["systemctl", "enable", "--now", "pktloss"])?;
    let addr = format!("127.0.0.1:{port}");
    let counted = exact_count(&addr, &ns, ".deb under systemd in nspawn", &mut || {
        c.alive()?;
        if c.exec(&["systemctl", "is-failed", "-q", "pktloss"]).is_ok() {
            let log = c.stdout(&["journalctl", "-u", "pktloss", "--no-pager", "-n", "20"]);
            bail!("pktloss.service failed:\n{log}");
        }
        Ok(())
    });
    if let Err(e) = counted {
        let log = c.stdout(&["journalctl", "-u", "pktloss", "--no-pager", "-n", "30"]);
        bail!("{e:#}\n{log}");
    }
    fs::remove_dir_all(&dropin).context("remove the drop-in")?;
    c.exec(&["dpkg", "-r", "pktloss"])?;
    if scrape(&addr).is_some() {
        bail!("after dpkg -r something still serves {addr}");
    }
    let left: Vec<String> = tree(&c)?.into_iter().filter(|p| !before.contains(p)).collect();
    if !left.is_empty() {
        bail!("dpkg -r left {}", left.join(" "));
    }
    c.exec(&["dpkg", "--purge", "pktloss"])?;
    let left: Vec<String> = tree(&c)?.into_iter().filter(|p| !before.contains(p)).collect();
    let named = c.exec(&["find", "/", "-xdev", "-path", "/proc", "-prune", "-o", "-name", "*pktloss*", "-print"])?;
    if !left.is_empty() || !named.trim().is_empty() {
        bail!("dpkg --purge left {} {}", left.join(" "), named.trim());
    }
    println!("dist-test: dpkg -r and --purge left nothing ({} paths compared)", before.len());
    Ok(())
}

/// The capabilities the `DaemonSet` adds (`add: [...]` in `deploy/kubernetes/daemonset.yaml`).
fn daemonset_caps() -> Result<Vec<String>> {
    let yaml = fs::read_to_string(util::workspace_root().join("deploy/kubernetes/daemonset.yaml"))
        .context("reading the DaemonSet")?;
    let line = yaml.lines().map(str::trim).find(|l| l.starts_with("add: [")).context("no `add: [` in the DaemonSet")?;
    let caps: Vec<String> = line
        .trim_start_matches("add: [")
        .trim_end_matches(']')
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_string())
        .filter(|c| !c.is_empty())
        .collect();
    if caps.is_empty() || !yaml.contains("drop: [\"ALL\"]") {
        bail!("the DaemonSet's capabilities are not `drop: [\"ALL\"]` then an add list");
    }
    Ok(caps)
}

/// A podman container removed on drop.
struct Podman {
    name: String,
    image: Option<String>,
}

fn podman() -> Command {
    let mut c = Command::new("podman");
    // runc and cgroupfs: crun refuses this VM's hybrid cgroups; systemd may not be PID 1.
    c.args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"]);
    c
}

impl Drop for Podman {
    fn drop(&mut self) {
        util::succeeds(podman().args(["rm", "-f", "-t", "0", &self.name]));
        if let Some(image) = &self.image {
            util::succeeds(podman().args(["rmi", "-f", image]));
        }
    }
}

/// The image under podman, as the `DaemonSet` runs it.
fn oci_in_podman() -> Result<()> {
    let archive = dist_file(&format!("pktloss-{VERSION}-oci.tar"));
    let mut p = Podman { name: format!("pktloss-dist-{}", std::process::id()), image: None };
    let loaded = output(podman().arg("load").arg("-i").arg(&archive))?;
    let image = loaded
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .map(|s| s.trim().to_string())
        .with_context(|| format!("podman load printed no image: {loaded}"))?;
    p.image = Some(image.clone());
    let ns = Netns::new("oci")?;
    let port = free_port()?;
    let mut cmd = podman();
    cmd.args(["run", "-d", "--name", &p.name, "--pid", "host", "--network", "host", "--read-only"])
        // The runtime's default limits are refused in this VM (runc without CAP_SYS_RESOURCE): fewer.
        .args(["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--cap-drop", "ALL"]);
    for cap in daemonset_caps()? {
        cmd.args(["--cap-add", &cap]);
    }
    cmd.args(["--security-opt", "apparmor=unconfined"])
        .args(["-v", "/sys/kernel/btf:/sys/kernel/btf:ro", "-v", "/sys/kernel/tracing:/sys/kernel/tracing:ro"])
        .args(["-v", "/run/netns:/run/netns:ro,rslave"])
        .arg(&image)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--netns-labels"]);
    eprintln!("running: {}", show(&cmd));
    output(&mut cmd)?;
    let inspect = output(podman().args(["inspect", "-f", "{{.HostConfig.Privileged}} {{.EffectiveCaps}}", &p.name]))?;
    if !inspect.starts_with("false") {
        bail!("the container is privileged: {inspect}");
    }
    let name = p.name.clone();
    let counted = exact_count(&format!("127.0.0.1:{port}"), &ns, "OCI image under podman", &mut || {
        let state = output(podman().args(["inspect", "-f", "{{.State.Status}}", &name]))?;
        if state.trim() != "running" {
            let logs = output(podman().args(["logs", &name])).unwrap_or_default();
            bail!("the container is {}: {logs}", state.trim());
        }
        Ok(())
    });
    if let Err(e) = counted {
        let logs = podman().args(["logs", &p.name]).output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
        bail!("{e:#}\n{}", logs.unwrap_or_default());
    }
    println!("dist-test: image {image}: capabilities {}", inspect.trim());
    Ok(())
}
