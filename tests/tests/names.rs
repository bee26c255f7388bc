//! Names of namespaces on the real kernel: processes in cgroups shaped like a Kubernetes pod's
//! (containerd), a Docker container's and a systemd service's, each in a network namespace of
//! its own with drops in it; the capture's JSON, its report and its pcapng comments name each.
//! And a real Podman container, named by Podman's own files.
use std::{
    fs,
    net::{SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use pktloss_tests::{Running, free_port, http_get, reason_name, root_test, run, sh, stop_serve};
use serde_json::Value;

const ID: &str = "3f2a9c1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
const POD_UID: &str = "5d1c2f3a-4b5c-6d7e-8f90-123456789abc";

/// The cgroup2 mount (`/sys/fs/cgroup` or, on a hybrid host, `/sys/fs/cgroup/unified`).
fn cgroup2_root() -> PathBuf {
    let mounts = fs::read_to_string("/proc/mounts").expect("mounts");
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("a cgroup2 mount")
}

/// A process in a network namespace of its own (not in /run/netns: only its cgroup names it),
/// moved into the cgroup `rel` under the cgroup2 root. Killed and its cgroups removed on drop.
struct Tenant {
    child: Child,
    dirs: Vec<PathBuf>,
}

impl Tenant {
    fn new(rel: &str) -> Self {
        let child = Command::new("unshare").args(["-n", "sleep", "120"]).stdin(Stdio::null()).spawn().expect("unshare");
        let root = cgroup2_root();
        let mut dirs = Vec::new();
        let mut at = root.clone();
        for part in rel.split('/') {
            at = at.join(part);
            if !at.exists() {
                fs::create_dir(&at).unwrap_or_else(|e| panic!("mkdir {}: {e}", at.display()));
                dirs.push(at.clone());
            }
        }
        let t = Self { child, dirs };
        // `unshare` execs `sleep`: wait until the namespace is its own.
        for _ in 0..100 {
            let mine = fs::read_link(format!("/proc/{}/ns/net", t.pid())).ok();
            if mine.is_some() && mine != fs::read_link("/proc/self/ns/net").ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        fs::write(at.join("cgroup.procs"), t.pid().to_string()).expect("move into the cgroup");
        t.in_netns(|| sh(&["ip", "link", "set", "lo", "up"]));
        t
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        fs::metadata(format!("/proc/{}/ns/net", self.pid())).expect("netns").ino()
    }

    fn in_netns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/proc/{}/ns/net", self.pid());
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd as _;
            let file = fs::File::open(&path).expect("open netns");
            // SAFETY: a valid fd; affects only this thread.
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
            f()
        })
        .join()
        .expect("netns thread")
    }

    /// `n` datagrams to a port nobody listens on.
    fn drops(&self, n: usize) {
        self.in_netns(move || {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let dst: SocketAddr = "127.0.0.1:9".parse().expect("addr");
            for _ in 0..n {
                s.send_to(b"pktloss names", dst).expect("send");
            }
        });
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        drop(self.child.kill());
        drop(self.child.wait());
        for d in self.dirs.iter().rev() {
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Files the kubelet keeps (pod and container log directories), made for the test and removed.
struct KubeletFiles {
    made: Vec<PathBuf>,
}

impl KubeletFiles {
    fn new() -> Self {
        let mut made = Vec::new();
        for d in ["/var/log/pods", "/var/log/containers"] {
            if !Path::new(d).exists() {
                fs::create_dir_all(d).expect("mkdir");
                made.push(PathBuf::from(d));
            }
        }
        let pod = PathBuf::from(format!("/var/log/pods/shop_cart-7f9_{POD_UID}"));
        fs::create_dir_all(pod.join("cart")).expect("pod dir");
        let link = PathBuf::from(format!("/var/log/containers/cart-7f9_shop_cart-{ID}.log"));
        drop(fs::remove_file(&link));
        std::os::unix::fs::symlink(pod.join("cart/0.log"), &link).expect("container link");
        made.push(pod);
        made.push(link);
        Self { made }
    }
}

impl Drop for KubeletFiles {
    fn drop(&mut self) {
        for p in self.made.iter().rev() {
            drop(if p.is_dir() { fs::remove_dir_all(p) } else { fs::remove_file(p) });
        }
    }
}

fn namespace(v: &Value, inode: u64) -> &Value {
    v["namespaces"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["netns"].as_u64() == Some(inode)))
        .unwrap_or_else(|| panic!("no namespace {inode} in {}", v["namespaces"]))
}

root_test!(pods_containers_and_services_name_their_namespaces, {
    let _kubelet = KubeletFiles::new();
    let uid_ = POD_UID.replace('-', "_");
    let pid = std::process::id();
    let pod = Tenant::new(&format!(
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/cri-containerd-{ID}.scope"
    ));
    let docker = Tenant::new(&format!("pktloss-test-{pid}.slice/docker-{ID}.scope"));
    let unit = format!("pktloss-test-{pid}.service");
    let service = Tenant::new(&format!("pktloss-test-{pid}-svc.slice/{unit}"));

    let dir = std::env::temp_dir().join(format!("pktloss-names-{pid}"));
    fs::create_dir_all(&dir).expect("dir");
    let (file, pcap) = (dir.join("c.pktloss"), dir.join("c.pcapng"));
    let r = Running::start(&[
        "capture",
        "--format",
        "json",
        "-o",
        file.to_str().expect("utf-8"),
        "--pcapng",
        pcap.to_str().expect("utf-8"),
        "--duration",
        "60s",
        "port",
        "9",
    ]);
    pod.drops(10);
    docker.drops(7);
    service.drops(5);
    std::thread::sleep(Duration::from_millis(300));
    let live = r.stop_json();

    let report = run(&["report", "--format", "json", file.to_str().expect("utf-8")]);
    assert!(report.status.success(), "{}", String::from_utf8_lossy(&report.stderr));
    let report: Value = serde_json::from_slice(&report.stdout).expect("report JSON");
    let report = if report.get("summary").is_some() { report["summary"].clone() } else { report };

    for v in [&live, &report] {
        let p = namespace(v, pod.inode());
        assert_eq!(p["label"], "pod:shop/cart-7f9", "{p}");
        assert_eq!(p["pod"]["uid"], POD_UID);
        assert_eq!(p["containers"][0]["runtime"], "containerd");
        assert_eq!(p["containers"][0]["id"], &ID[..12]);
        assert_eq!(p["containers"][0]["name"], "cart");
        let d = namespace(v, docker.inode());
        assert_eq!(d["containers"][0]["runtime"], "docker", "{d}");
        assert_eq!(d["containers"][0]["id"], &ID[..12]);
        assert_eq!(namespace(v, service.inode())["label"], unit.as_str());
        let flow_name = |inode: u64| {
            v["flows"]
                .as_array()
                .and_then(|a| a.iter().find(|f| f["netns"].as_u64() == Some(inode)))
                .map(|f| (f["netns_name"].as_str().unwrap_or("").to_owned(), f["count"].as_u64().unwrap_or(0)))
                .unwrap_or_default()
        };
        assert_eq!(flow_name(pod.inode()), ("pod:shop/cart-7f9".to_owned(), 10));
        assert_eq!(flow_name(service.inode()), (unit.clone(), 5));
        assert_eq!(flow_name(docker.inode()).1, 7);
    }
    let text = run(&["report", file.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("pod:shop/cart-7f9") && text.contains(&unit), "{text}");

    let comments = sh(&["tshark", "-r", pcap.to_str().expect("utf-8"), "-T", "fields", "-e", "frame.comment"]);
    assert!(
        comments.lines().any(|c| c.contains("netns_name=pod:shop/cart-7f9") && c.contains("container=containerd:cart")),
        "{comments}"
    );
    assert!(comments.lines().any(|c| c.contains(&format!("unit={unit}"))), "{comments}");
    drop(fs::remove_dir_all(&dir));
});

// 300 namespaces made and deleted one after another, 10 drops each, in one capture: the kernel
// gives the inode of a deleted namespace to a later one, yet each stays a namespace of its own
// (by its cookie), with exactly its drops.
root_test!(three_hundred_namespaces_one_after_another_stay_apart, {
    let r = Running::start(&["capture", "--format", "json", "--duration", "300s", "udp", "and", "dst", "port", "7"]);
    let dst: SocketAddr = "127.0.0.1:7".parse().expect("addr");
    let mut inodes = std::collections::BTreeSet::new();
    for i in 0..300 {
        let ns = pktloss_tests::Netns::new(&format!("churn{i}"));
        inodes.insert(ns.inode());
        ns.send_udp(dst, 10);
    }
    std::thread::sleep(Duration::from_millis(300));
    let s = r.stop_json();
    let flows = s["flows"].as_array().expect("flows");
    let mut per_ns = std::collections::BTreeMap::new();
    for f in flows.iter().filter(|f| f["dport"] == 7) {
        let key = (f["netns"].as_u64().unwrap_or(0), f["netns_cookie"].as_u64().unwrap_or(0));
        *per_ns.entry(key).or_insert(0) += f["count"].as_u64().unwrap_or(0);
    }
    eprintln!("300 namespaces had {} distinct inodes", inodes.len());
    assert_eq!(s["total_drops"].as_u64(), Some(3000));
    assert_eq!(per_ns.len(), 300, "namespaces told apart: {per_ns:?}");
    assert!(per_ns.values().all(|&n| n == 10), "{per_ns:?}");
});

// Receive drops are the socket owner's: a receiver whose buffer is full drops datagrams in the
// softirq of whichever task sent them, yet flows and samples name the receiver (found by its
// socket's inode); TCP drops carry the packet's flags.
root_test!(receive_drops_name_the_socket_owner, {
    let format = fs::read_to_string("/sys/kernel/tracing/events/skb/kfree_skb/format").unwrap_or_default();
    let ns = pktloss_tests::Netns::new("owner");
    let mut receiver = Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c"])
        .arg(
            "import socket,time\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,1)\n\
             s.bind(('127.0.0.1',5555))\n\
             print('ready',flush=True)\n\
             time.sleep(60)",
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("receiver");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(receiver.stdout.take().expect("stdout")), &mut line)
        .expect("ready");
    assert_eq!(line.trim(), "ready");
    let r = Running::start(&[
        "capture",
        "--format",
        "json",
        "--duration",
        "60s",
        "netns",
        &ns.name,
        "and",
        "(udp",
        "port",
        "5555",
        "or",
        "tcp)",
    ]);
    ns.send_udp("127.0.0.1:5555".parse().expect("addr"), 200);
    ns.run(|| {
        drop(std::net::TcpStream::connect_timeout(&"127.0.0.1:5556".parse().expect("addr"), Duration::from_secs(2)))
    });
    std::thread::sleep(Duration::from_millis(300));
    let s = r.stop_json();
    drop(receiver.kill());
    drop(receiver.wait());
    let rcvbuf = s["flows"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["dport"] == 5555))
        .unwrap_or_else(|| panic!("no flow to port 5555: {}", s["flows"]));
    assert!(rcvbuf["count"].as_u64().unwrap_or(0) > 100, "{rcvbuf}");
    let samples = s["samples"].as_array().expect("samples");
    let udp = samples.iter().find(|x| x["dport"] == 5555).expect("a sample of the full receiver");
    // The task that ran the softirq is the sender (this test), not the receiver.
    assert_eq!(udp["pid"].as_u64(), Some(u64::from(std::process::id())), "{udp}");
    if format.contains("rx_sk") {
        assert_eq!(udp["owner_pid"].as_u64(), Some(u64::from(receiver.id())), "{udp}");
        assert_eq!(udp["owner_comm"], "python3");
        assert_eq!(rcvbuf["pid"].as_u64(), Some(u64::from(receiver.id())), "the flow is the receiver's: {rcvbuf}");
        assert_eq!(rcvbuf["comm"], "python3");
    }
    let syn = samples.iter().find(|x| x["dport"] == 5556).expect("a sample of the refused SYN");
    assert_eq!(syn["tcp_flags"], "SYN", "{syn}");
});

/// The kernel's cookie of a namespace (`SO_NETNS_COOKIE`, 5.14+; 0 before).
fn cookie_of(ns: &pktloss_tests::Netns) -> u64 {
    ns.run(|| {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut cookie: u64 = 0;
        let mut len = size_of::<u64>() as libc::socklen_t;
        use std::os::fd::AsRawFd as _;
        // SAFETY: a valid socket and a buffer of the length given.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NETNS_COOKIE,
                (&raw mut cookie).cast(),
                &raw mut len,
            )
        };
        if rc == 0 { cookie } else { 0 }
    })
}

// A plain capture (no `-o`, nothing read at its end but the maps) keeps the names of the
// namespaces that were made with `ip netns add`, had drops and were deleted before its end:
// names are read while a namespace with drops lives, and kept bound to its cookie, so that a
// later namespace given the same inode is named as itself, not as the one before.
root_test!(namespaces_gone_before_the_end_keep_their_names, {
    let r = Running::start(&["capture", "--format", "json", "--duration", "120s", "udp", "and", "dst", "port", "7"]);
    let dst: SocketAddr = "127.0.0.1:7".parse().expect("addr");
    // (inode, cookie) -> name, and how often each inode was given.
    let mut made = std::collections::BTreeMap::new();
    let mut inodes = std::collections::BTreeMap::<u64, u32>::new();
    for round in 0..4 {
        let batch: Vec<pktloss_tests::Netns> =
            (0..3).map(|i| pktloss_tests::Netns::new(&format!("gone{round}x{i}"))).collect();
        for ns in &batch {
            made.insert((ns.inode(), cookie_of(ns)), ns.name.clone());
            *inodes.entry(ns.inode()).or_default() += 1;
            ns.send_udp(dst, 4);
        }
        // Alive about two of pktloss's namespace rounds (one a second), then deleted.
        std::thread::sleep(Duration::from_secs(2));
        drop(batch);
    }
    std::thread::sleep(Duration::from_millis(500));
    let s = r.stop_json();
    let reused = inodes.values().filter(|&&n| n > 1).count();
    eprintln!("12 namespaces had {} inodes, {reused} given more than once", inodes.len());
    let ours: Vec<&Value> =
        s["flows"].as_array().expect("flows").iter().filter(|f| f["dport"] == 7 && f["proto"] == "udp").collect();
    assert_eq!(ours.iter().map(|f| f["count"].as_u64().unwrap_or(0)).sum::<u64>(), 48, "{ours:?}");
    let mut named = 0;
    for f in &ours {
        let key = (f["netns"].as_u64().unwrap_or(0), f["netns_cookie"].as_u64().unwrap_or(0));
        if key.1 == 0 && inodes.get(&key.0).copied().unwrap_or(0) > 1 {
            continue; // no cookie (before 5.14) and an inode given twice: ambiguous by design
        }
        let want = made
            .iter()
            .find(|((ino, c), _)| *ino == key.0 && (*c == key.1 || key.1 == 0 || *c == 0))
            .map_or_else(|| panic!("a flow of no namespace we made: {f}"), |(_, n)| n.as_str());
        assert_eq!(f["netns_name"], want, "flow {f}");
        named += 1;
    }
    assert!(named >= 9, "{named} of {} flows checked", ours.len());
    let listed: Vec<&str> =
        s["namespaces"].as_array().expect("namespaces").iter().filter_map(|n| n["label"].as_str()).collect();
    for name in made.values() {
        assert!(listed.contains(&name.as_str()), "{name} not in the namespaces: {listed:?}");
    }
});

/// Podman as the tests run it: runc (crun refuses this VM's hybrid cgroups) and a cgroup manager.
fn podman(manager: &str, args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager", manager])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run podman (cargo xtask setup installs it)")
}

/// A real Podman container of a local image (a static busybox and nothing else, imported: no
/// registry), in a network namespace of its own (`--network none`: no bridge, no firewall rule
/// made on the host). It and its image are removed on drop, also when the test panics.
struct PodmanContainer {
    manager: String,
    name: String,
    image: String,
    dir: PathBuf,
}

impl PodmanContainer {
    fn start(manager: &str, name: &str) -> Self {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("pktloss-podman-{pid}"));
        let c = Self {
            manager: manager.to_owned(),
            name: name.to_owned(),
            image: format!("localhost/pktloss-test-{pid}:1"),
            dir: dir.clone(),
        };
        // A container of that name left by a run that was killed.
        drop(podman(manager, &["rm", "-f", "-t", "0", name]));
        let bin = dir.join("rootfs/bin");
        fs::create_dir_all(&bin).expect("rootfs");
        fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox (busybox-static)");
        let tar = dir.join("rootfs.tar");
        sh(&["tar", "-C", dir.join("rootfs").to_str().expect("utf-8"), "-cf", tar.to_str().expect("utf-8"), "."]);
        let out = podman(manager, &["import", "-q", tar.to_str().expect("utf-8"), &c.image]);
        assert!(out.status.success(), "podman import: {}", String::from_utf8_lossy(&out.stderr));
        // The runtime's default limits (1048576 files) are refused in this VM: ask for fewer.
        let mut run: Vec<&str> = "run -d --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --name"
            .split_whitespace()
            .collect();
        run.extend([name, &c.image, "/bin/busybox", "sleep", "600"]);
        let out = podman(manager, &run);
        assert!(out.status.success(), "podman run: {}", String::from_utf8_lossy(&out.stderr));
        c
    }

    fn pid(&self) -> u32 {
        let out = podman(&self.manager, &["inspect", "-f", "{{.State.Pid}}", &self.name]);
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("the container's PID")
    }

    fn inode(&self) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        fs::metadata(format!("/proc/{}/ns/net", self.pid())).expect("netns").ino()
    }

    /// `n` datagrams to a port nobody listens on, sent from inside its namespace (entered by
    /// the PID of its process).
    fn drops(&self, n: usize) {
        let path = format!("/proc/{}/ns/net", self.pid());
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd as _;
            let file = fs::File::open(&path).expect("open netns");
            // SAFETY: a valid fd; affects only this thread.
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
            for _ in 0..n {
                s.send_to(b"pktloss podman", "127.0.0.1:9").expect("send");
            }
        })
        .join()
        .expect("netns thread");
    }
}

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        drop(podman(&self.manager, &["rm", "-f", "-t", "0", &self.name]));
        drop(podman(&self.manager, &["rmi", "-f", &self.image]));
        drop(fs::remove_dir_all(&self.dir));
    }
}

/// The cgroup managers Podman can use here: cgroupfs always; systemd's only where systemd runs
/// the host (PID 1).
fn podman_managers() -> Vec<&'static str> {
    let systemd = fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd");
    if systemd { vec!["cgroupfs", "systemd"] } else { vec!["cgroupfs"] }
}

// A real Podman container (no `ip netns` name: only its cgroup and Podman's files name it):
// its drops are labelled `podman:pktl-uxc` in the flows, the namespaces, the report's samples
// and the diagnosis; `netns pktl-uxc` (and `netns podman:pktl-uxc`) selects its drops alone;
// the diagnosis's verify commands enter it by its PID.
root_test!(a_podman_container_is_named_by_podman, {
    for manager in podman_managers() {
        podman_container_named(manager);
    }
});

fn podman_container_named(manager: &str) {
    let name = "pktl-uxc";
    let label = format!("podman:{name}");
    let ctr = PodmanContainer::start(manager, name);
    let (inode, pid) = (ctr.inode(), ctr.pid());
    assert_ne!(Some(inode), fs::metadata("/proc/self/ns/net").ok().map(|m| std::os::unix::fs::MetadataExt::ino(&m)));

    // In the container's directory, removed with it.
    let file = ctr.dir.join("c.pktloss");
    let r = Running::start(&[
        "capture",
        "--format",
        "json",
        "-o",
        file.to_str().expect("utf-8"),
        "--duration",
        "60s",
        "netns",
        name,
        "and",
        "port",
        "9",
    ]);
    ctr.drops(7);
    // Drops of the host's namespace, which the filter leaves out.
    let host = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for _ in 0..3 {
        host.send_to(b"pktloss host", "127.0.0.1:9").expect("send");
    }
    std::thread::sleep(Duration::from_millis(300));
    let v = r.stop_json();
    assert_eq!(v["total_drops"], 7, "{manager}: {}", v["flows"]);
    assert!(v["filter"]["drops_filtered_out"].as_u64() >= Some(3), "{}", v["filter"]);
    let ns = namespace(&v, inode);
    assert_eq!(ns["label"], label.as_str(), "{manager}: {ns}");
    assert_eq!(ns["containers"][0]["runtime"], "podman", "{ns}");
    assert_eq!(ns["containers"][0]["name"], name, "{ns}");
    assert_eq!(ns["pid"], pid, "{ns}");
    let flows = v["flows"].as_array().expect("flows");
    assert!(
        !flows.is_empty() && flows.iter().all(|f| f["netns"] == inode && f["netns_name"] == label.as_str()),
        "{flows:?}"
    );
    assert!(
        v["samples"].as_array().is_some_and(|s| !s.is_empty() && s.iter().all(|s| s["netns_name"] == label.as_str()))
    );

    // The report's samples name it.
    let text = run(&["report", file.to_str().expect("utf-8")]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("netns {label} ({inode})")), "{text}");
    let md = run(&["report", "--format", "markdown", file.to_str().expect("utf-8")]);
    assert!(String::from_utf8_lossy(&md.stdout).contains(&format!("netns {label} ({inode})")));

    // The diagnosis names it, and its verify commands enter it by the container's PID.
    let diag = Running::start(&["diagnose", "--duration", "3s", "netns", &label]);
    ctr.drops(5);
    let (code, out) = diag.finish();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("[netns {label} ({inode})]")), "{out}");
    assert!(out.contains(&format!("nsenter --net=/proc/{pid}/ns/net ")), "{out}");
    assert!(!out.contains("<PID in netns"), "{out}");

    // `serve --netns-labels` names its series by it.
    let listen = format!("127.0.0.1:{}", free_port());
    let serve = Running::start(&["serve", "--listen", &listen, "--netns-labels"]);
    ctr.drops(4);
    let want = format!("pktloss_netns_drops_total{{netns=\"{label}\",reason=\"{}\"}} 4", reason_name("NO_SOCKET"));
    let t = std::time::Instant::now();
    let mut body = String::new();
    while t.elapsed() < Duration::from_secs(10) && !body.lines().any(|l| l == want) {
        std::thread::sleep(Duration::from_millis(300));
        body = http_get(&listen, "/metrics", None).2;
    }
    assert!(body.lines().any(|l| l == want), "{want} not in: {body}");
    stop_serve(serve);

    // A name no namespace has is refused, as before.
    let bad = run(&["capture", "-d", "1s", "netns", "podman:pktl-no-such"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Run `f` on a thread in a network namespace of its own (`unshare`, loopback up): a namespace
/// with no name anywhere (no `/run/netns` entry, no process's `/proc/PID/ns/net`), gone when
/// the thread ends. Returns its inode and what `f` returned.
fn in_unnamed_namespace<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> (u64, T) {
    std::thread::spawn(move || {
        use std::os::unix::fs::MetadataExt as _;
        // SAFETY: no memory preconditions; affects only this thread.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        // A child made on this thread lives in its namespace.
        sh(&["ip", "link", "set", "lo", "up"]);
        let inode = fs::metadata("/proc/thread-self/ns/net").expect("stat own netns").ino();
        (inode, f())
    })
    .join()
    .expect("unnamed namespace thread")
}

/// A new namespace given the inode `gone` (the kernel gives the lowest free one, once it has
/// cleaned the old namespace up: a workqueue, soon after), tried up to 50 times.
fn namespace_with_inode(gone: u64, tag: &str) -> pktloss_tests::Netns {
    for i in 0..50 {
        let ns = pktloss_tests::Netns::new(&format!("{tag}{i}"));
        if ns.inode() == gone {
            return ns;
        }
        drop(ns);
        std::thread::sleep(Duration::from_millis(40));
    }
    panic!("no new namespace was given inode {gone}: the test proves nothing")
}

/// The first evidence line of the diagnosis that says `what`.
fn evidence_line<'a>(v: &'a Value, what: &str) -> &'a str {
    let lines = || v["causes"].as_array().into_iter().flatten().filter_map(|c| c["evidence"].as_array()).flatten();
    lines().filter_map(Value::as_str).find(|l| l.contains(what)).unwrap_or_else(|| {
        panic!("no evidence line with {what:?}: {:#}", serde_json::to_string_pretty(&v["causes"]).unwrap_or_default())
    })
}

// The race of a diagnose run where test namespaces came and went one after another: a namespace
// with drops is gone before it is named, a later one is given its inode (the kernel hands out
// the lowest free one) and is named. Each flow says its own namespace's name, or none: never
// the later one's, which only shares the inode (namespaces are told apart by cookie).
root_test!(a_gone_namespace_is_not_named_after_the_next_one_with_its_inode, {
    let r = Running::start(&["diagnose", "--format", "json", "--duration", "5s", "udp", "and", "dst", "port", "7"]);
    let dst: SocketAddr = "127.0.0.1:7".parse().expect("addr");
    let (gone, from_gone) = in_unnamed_namespace(move || {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for _ in 0..3 {
            s.send_to(&[0u8; 8], dst).expect("send");
        }
        s.local_addr().expect("addr")
    });
    let next = namespace_with_inode(gone, "after");
    let from_next = next.send_udp(dst, 5);
    let err = r.stderr();
    let (code, out) = r.finish();
    assert_eq!(code, Some(0), "pktloss diagnose failed: {err}\n{out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    if cookie_of(&next) == 0 {
        eprintln!("no namespace cookies on this kernel (before 5.14): names are by inode, ambiguous by design");
        return;
    }
    let named = format!("[netns {} ({gone})]", next.name);
    let line = evidence_line(&v, &format!("flow udp {from_gone} -> {dst}"));
    assert!(!line.contains(&next.name), "the gone namespace's flow is named after the next one: {line}");
    assert!(line.starts_with(&format!("[netns {gone}]")), "{line}");
    let line = evidence_line(&v, &format!("flow udp {from_next} -> {dst}"));
    assert!(line.starts_with(&named), "{line}");
    drop(next);
});

// The counters of a namespace gone before the end, and the lines that say when it appeared and
// went, are its own: not those of a later namespace the kernel gave its inode (the lowest free
// one), which counted nothing. The namespaces are told apart by cookie.
root_test!(a_gone_namespace_keeps_its_own_counters_when_its_inode_is_given_again, {
    const N: usize = 40;
    let r = Running::start(&["diagnose", "--format", "json", "--duration", "8s"]);
    std::thread::sleep(Duration::from_secs(1));
    let first = pktloss_tests::Netns::new("lifea");
    let (gone, first_name) = (first.inode(), first.name.clone());
    let first_cookie = cookie_of(&first);
    first.send_udp("127.0.0.1:9913".parse().expect("addr"), N);
    // The watcher reads it while it lives (each second, at once after its first drops).
    std::thread::sleep(Duration::from_millis(2500));
    drop(first);
    let next = namespace_with_inode(gone, "lifeb");
    let err = r.stderr();
    let (code, out) = r.finish();
    assert_eq!(code, Some(0), "pktloss diagnose failed: {err}\n{out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"));
    if first_cookie == 0 {
        eprintln!("no namespace cookies on this kernel (before 5.14): counters are by inode, ambiguous by design");
        return;
    }
    let causes = serde_json::to_string_pretty(&v["causes"]).unwrap_or_default();
    let c = v["causes"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| c["id"] == "no-listener" && c["netns"].as_array().is_some_and(|n| n.contains(&gone.into())))
        })
        .unwrap_or_else(|| panic!("no no-listener cause in netns {gone}: {causes}"));
    assert_eq!(c["counter_drops"].as_u64(), Some(N as u64), "its own Udp.NoPorts, not the next one's: {causes}");
    let lines: Vec<&str> = c["evidence"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let tag = format!("[netns {first_name} ({gone})]");
    assert!(lines.iter().any(|l| l.starts_with(&tag) && l.contains("was gone")), "{causes}");
    assert!(lines.iter().any(|l| l.starts_with(&tag) && l.contains(&format!("Udp.NoPorts +{N}"))), "{causes}");
    assert!(lines.iter().all(|l| !l.contains(&next.name)), "the next namespace's lines: {causes}");
    assert_eq!(lines.iter().filter(|l| l.contains("appeared")).count(), 1, "one namespace was born: {causes}");
    drop(next);
});
