//! Kernel step: load the eBPF object, attach each probe through its lifecycle (`can_run`, attach,
//! detach on drop), drain the detail ring buffer and read the exact in-kernel counters.
use std::{fs, os::fd::RawFd, path::PathBuf, sync::mpsc, time::Duration};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, Map, MapData, PerCpuArray, PerCpuHashMap, StackTraceMap},
    programs::{BtfTracePoint, KProbe, TracePoint},
};
use pktloss_common::{
    Config, DevKey, DropEvent, DropKey, FlowKey, FwKey, FwOffsets, MAX_SNAPLEN, NatTuple, NetnsKey, ResetTpOffsets,
    RetransTpOffsets, RunCache, flag, stat,
};

use crate::{
    Error, decode, kernel::btf::KernelBtf, kernel::maps, kernel::ring::Ring, kernel::tracefs, model::ProbeStatus,
};

/// The eBPF object built by `build.rs`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pktloss"));

/// Capacity of the in-kernel flow table (must match `FLOWS` in pktloss-ebpf).
pub(crate) const FLOW_CAPACITY: u32 = 8192;

/// What to collect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// Exact per-flow counters.
    pub flows: bool,
    /// Sampled per-drop detail through the ring buffer.
    pub detail: bool,
    /// Kernel stack per (reason, location).
    pub stacks: bool,
    /// Detail events per second over all CPUs; None = unlimited.
    pub detail_budget: Option<u32>,
    /// Packet bytes per detail event (0 = none).
    pub snaplen: u32,
    /// Ring buffer size in bytes (power of two, multiple of the page size).
    pub ringbuf_bytes: u32,
    /// Force the classic tracepoints even where `tp_btf` works (for tests and old kernels).
    pub classic: bool,
    /// Count transmitted packets with the `net:net_dev_queue` probe (a program run per
    /// transmitted packet) instead of reading the devices' own counters.
    pub tx_trace: bool,
    /// Count the bytes dropped per (reason, location) (`flag::BYTES`; `serve`).
    pub bytes: bool,
    /// Attach the empty program `kfree_skb_floor` in place of the drop programs (the
    /// benchmark's floor: counts nothing).
    pub floor: bool,
    /// Leave out the probes that never run per drop (`tcp:tcp_send_reset`, `xdp:xdp_exception`,
    /// `devlink:devlink_trap_report`): the benchmark's "sources off" side.
    pub no_sources: bool,
    /// Count only the drops this filter passes (`flag::FILTER`).
    pub filter: Option<crate::filter::FilterSpec>,
    /// The filter compiled for this host (by the session, which knows the kernel's reasons).
    pub compiled_filter: Option<pktloss_common::Filter>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            flows: true,
            detail: true,
            stacks: false,
            detail_budget: Some(1000),
            snaplen: pktloss_common::DEFAULT_SNAPLEN,
            ringbuf_bytes: 2 << 20,
            classic: false,
            tx_trace: false,
            bytes: false,
            floor: false,
            no_sources: false,
            filter: None,
            compiled_filter: None,
        }
    }
}

/// Options no kernel can run: one line each, exit code 2.
fn check_options(options: &Options) -> Result<()> {
    if options.stacks && !options.detail {
        return Err(Error::BadInput(
            "--stacks records the stack of each sampled detail event; it cannot go with --no-detail".to_owned(),
        )
        .into());
    }
    if options.snaplen as usize > MAX_SNAPLEN {
        return Err(
            Error::BadInput(format!("--snaplen {} is larger than the maximum {MAX_SNAPLEN}", options.snaplen)).into()
        );
    }
    Ok(())
}

/// What tracefs and the system say of the tracepoints the programs read, beside
/// [`KernelFacts`]: the configuration is built from both.
pub(crate) struct TracepointFacts {
    /// The `skb:kfree_skb` format (required).
    pub kfree: tracefs::Format,
    /// The `tcp:tcp_retransmit_skb` format, when the kernel has it.
    pub retrans: Option<tracefs::Format>,
    /// The `tcp:tcp_send_reset` format, when the kernel has it.
    pub reset: Option<tracefs::Format>,
    /// The `xdp:xdp_exception` format, when the kernel has it.
    pub xdp_exc: Option<tracefs::Format>,
    /// The `devlink:devlink_trap_report` format, when the kernel has it.
    pub trap: Option<tracefs::Format>,
    /// Whether the kernel has kprobes (the firewall-chain probes and `tcp_drop` need them).
    pub kprobes: bool,
    pub ncpus: usize,
}

impl TracepointFacts {
    fn read(tracefs: &std::path::Path) -> Result<Self> {
        if !tracefs::exists(tracefs, "skb", "kfree_skb") {
            return Err(Error::MissingKernelFeature("this kernel has no skb:kfree_skb tracepoint".to_owned()).into());
        }
        let kfree = tracefs::read_format(tracefs, "skb", "kfree_skb").map_err(Error::KernelInterface)?;
        let retrans = tracefs::read_format(tracefs, "tcp", "tcp_retransmit_skb").ok();
        let reset = tracefs::read_format(tracefs, "tcp", "tcp_send_reset").ok();
        let xdp_exc = tracefs::read_format(tracefs, "xdp", "xdp_exception").ok();
        let trap = tracefs::read_format(tracefs, "devlink", "devlink_trap_report").ok();
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| anyhow!("cannot count CPUs: {e}"))?;
        let kprobes = kprobes_available(tracefs);
        Ok(Self { kfree, retrans, reset, xdp_exc, trap, kprobes, ncpus })
    }
}

/// The programs' frozen configuration and what userspace keeps of it.
#[derive(Debug)]
pub(crate) struct ProgramConfig {
    pub config: Config,
    /// The reason whose flows are keyed by location ([`Config::location_keyed_reason`]).
    pub location_keyed_reason: u32,
    /// Detail events per CPU and second (`u32::MAX`: unlimited).
    pub per_cpu: u32,
    /// The firewall-chain kprobes to attach (`flag::FIREWALL` is set when any).
    fw: FwPlan,
}

/// The programs' configuration: a pure function of the options and the kernel's facts.
pub(crate) fn program_config(options: &Options, kbtf: &KernelFacts, tp: &TracepointFacts) -> Result<ProgramConfig> {
    let offsets = kbtf
        .offsets
        .clone()
        .map_err(|e| Error::MissingKernelFeature(format!("cannot resolve kernel struct offsets from BTF: {e}")))?;
    let (kfree_fmt, retrans_fmt, ncpus) = (&tp.kfree, &tp.retrans, tp.ncpus);
    let kfree_btf = kbtf.kfree_btf;
    let mut flags = 0;
    if options.flows {
        flags |= flag::FLOWS;
    }
    if options.detail {
        flags |= flag::DETAIL;
        if options.snaplen > 0 {
            flags |= flag::PACKET_BYTES;
        }
    }
    if options.stacks {
        flags |= flag::STACKS;
    }
    if options.bytes {
        flags |= flag::BYTES;
    }
    if let Some(f) = &options.compiled_filter {
        flags |= flag::FILTER;
        let words = &f.atoms[..f.len as usize];
        if words.iter().any(|a| a.word >= pktloss_common::filter_word::DEV_NAME_LO) {
            flags |= flag::FILTER_DEV_NAME;
        }
    }
    if kbtf.untrusted_mem_loads {
        flags |= flag::UNTRUSTED_LOADS;
    }
    if kbtf.task_btf {
        flags |= flag::TASK_BTF;
    }
    let fw_plan = FwPlan::new(kbtf, tp.kprobes, options.floor);
    if fw_plan.any() {
        flags |= flag::FIREWALL;
    }
    // The conntrack original tuple: with flows, not the floor, its offsets known.
    if options.flows && !options.floor && kbtf.fw.as_ref().is_some_and(|f| f.nat.is_ok()) {
        flags |= flag::NAT;
    }
    // NOT_SPECIFIED says nothing of why: its flows are counted apart by location, as are
    // all flows on a kernel without reasons.
    let location_keyed_reason = if kfree_fmt.offset_or_absent("reason") == u32::MAX {
        flags |= flag::NO_REASONS;
        pktloss_common::REASON_NONE
    } else {
        kbtf.not_specified.unwrap_or(pktloss_common::NO_LOCATION_KEYED_REASON)
    };
    let per_cpu = match options.detail_budget {
        None => u32::MAX,
        Some(b) => b.div_ceil(ncpus as u32),
    };
    let config = Config {
        offsets,
        kfree_tp: pktloss_common::KfreeTpOffsets {
            skbaddr: kfree_fmt.offset_or_absent("skbaddr"),
            location: kfree_fmt.offset_or_absent("location"),
            protocol: kfree_fmt.offset_or_absent("protocol"),
            reason: kfree_fmt.offset_or_absent("reason"),
            rx_sk: kfree_fmt.offset_or_absent("rx_sk"),
        },
        kfree_btf,
        retrans_tp: retrans_fmt.as_ref().map_or_else(RetransTpOffsets::default, |f| RetransTpOffsets {
            skaddr: f.offset_or_absent("skaddr"),
            sport: f.offset_or_absent("sport"),
            dport: f.offset_or_absent("dport"),
            family: f.offset_or_absent("family"),
            saddr: f.offset_or_absent("saddr"),
            daddr: f.offset_or_absent("daddr"),
            saddr_v6: f.offset_or_absent("saddr_v6"),
            daddr_v6: f.offset_or_absent("daddr_v6"),
        }),
        reset_tp: tp.reset.as_ref().map_or_else(ResetTpOffsets::default, |f| ResetTpOffsets {
            skbaddr: f.offset_or_absent("skbaddr"),
            skaddr: f.offset_or_absent("skaddr"),
            reason: f.offset_or_absent("reason"),
            saddr: f.offset_or_absent("saddr"),
            daddr: f.offset_or_absent("daddr"),
            sport: f.offset_or_absent("sport"),
            dport: f.offset_or_absent("dport"),
            family: f.offset_or_absent("family"),
            saddr_v6: f.offset_or_absent("saddr_v6"),
            daddr_v6: f.offset_or_absent("daddr_v6"),
        }),
        xdp_exc_tp: tp.xdp_exc.as_ref().map_or_else(pktloss_common::XdpExcTpOffsets::default, |f| {
            pktloss_common::XdpExcTpOffsets {
                prog_id: f.offset_or_absent("prog_id"),
                act: f.offset_or_absent("act"),
                ifindex: f.offset_or_absent("ifindex"),
            }
        }),
        trap_tp: tp.trap.as_ref().map_or_else(pktloss_common::TrapTpOffsets::default, |f| {
            pktloss_common::TrapTpOffsets {
                bus_name: f.offset_or_absent("bus_name"),
                dev_name: f.offset_or_absent("dev_name"),
                trap_name: f.offset_or_absent("trap_name"),
                trap_group_name: f.offset_or_absent("trap_group_name"),
                input_dev_name: f.offset_or_absent("input_dev_name"),
                pad: 0,
            }
        }),
        flags,
        detail_budget_per_cpu: per_cpu,
        snaplen: options.snaplen,
        // Every CPU may be producing at once: check often enough that together they cannot
        // fill the ring between two checks of the same CPU.
        check_bytes: (options.ringbuf_bytes / (16 * ncpus as u32).max(1)).max(4096),
        wakeup_fill: options.ringbuf_bytes / 4,
        location_keyed_reason,
        filter: options.compiled_filter.unwrap_or_default(),
        fw: kbtf.fw.as_ref().map_or_else(FwOffsets::default, |f| f.offsets),
    };
    Ok(ProgramConfig { config, location_keyed_reason, per_cpu, fw: fw_plan })
}

/// Attach every probe: the drop tracepoint (required), the others when the kernel and the
/// options allow, each with its status.
fn attach_probes(
    ebpf: &mut Ebpf,
    aya_btf: &Btf,
    kbtf: &KernelFacts,
    tracefs: &std::path::Path,
    options: &Options,
    tp: &TracepointFacts,
    program: &ProgramConfig,
) -> Result<Vec<ProbeStatus>> {
    let mut probes = Vec::new();
    // skb:kfree_skb -- required.
    let kfree = if options.floor {
        attach_btf(ebpf, "kfree_skb_floor", "kfree_skb", aya_btf)
            .map_err(|e| Error::MissingKernelFeature(format!("cannot attach the empty floor program: {e}")))?;
        status("skb:kfree_skb", "tp_btf", true, "the empty floor program (--floor): nothing is counted")
    } else {
        attach_kfree(ebpf, aya_btf, kbtf, options.classic)?
    };
    probes.push(kfree);
    // net:net_dev_queue -- on request; otherwise TX comes from the device counters.
    if options.tx_trace {
        probes.push(attach_dev_queue(ebpf, aya_btf, kbtf, tracefs, options.classic));
    } else {
        probes.push(status(
            "net:net_dev_queue",
            "tp_btf",
            false,
            "off by default (a program run per transmitted packet); TX from device counters, --tx-trace to attach",
        ));
    }
    // tcp:tcp_retransmit_skb -- optional.
    probes.push(match tp.retrans.is_some().then_some(()) {
        None => status("tcp:tcp_retransmit_skb", "tracepoint", false, "tracepoint absent in this kernel"),
        Some(()) => match attach_tp(ebpf, "tcp_retransmit_skb", "tcp", "tcp_retransmit_skb") {
            Ok(()) => status(
                "tcp:tcp_retransmit_skb",
                "tracepoint",
                true,
                "classic only: it runs per retransmission, fields from tracefs",
            ),
            Err(e) => status(
                "tcp:tcp_retransmit_skb",
                "tracepoint",
                false,
                crate::kernel::verifier::describe_failure("tcp_retransmit_skb", &kbtf.release, &e).line,
            ),
        },
    });
    // tcp:tcp_send_reset -- optional; its reason field is 6.10+.
    let skip = if options.floor {
        Some("not attached with the floor program (--floor)")
    } else if options.no_sources {
        Some("left out (--no-sources, the benchmark's sources-off side)")
    } else {
        None
    };
    probes.push(attach_reset(ebpf, tp.reset.as_ref(), skip, &kbtf.release));
    // xdp:xdp_exception -- optional; runs per XDP_ABORTED (or unsupported action).
    probes.push(match (&tp.xdp_exc, skip) {
        (None, _) => status("xdp:xdp_exception", "tracepoint", false, "tracepoint absent in this kernel"),
        (Some(_), Some(why)) => status("xdp:xdp_exception", "tracepoint", false, why),
        (Some(_), None) => match attach_tp(ebpf, "xdp_exception", "xdp", "xdp_exception") {
            Ok(()) => status(
                "xdp:xdp_exception",
                "tracepoint",
                true,
                "runs per XDP exception (XDP_ABORTED): counts per program, action and device",
            ),
            Err(e) => status(
                "xdp:xdp_exception",
                "tracepoint",
                false,
                crate::kernel::verifier::describe_failure("xdp_exception", &kbtf.release, &e).line,
            ),
        },
    });
    // devlink:devlink_trap_report -- optional; runs per packet a device traps and reports.
    probes.push(match (&tp.trap, skip) {
        (None, _) => status(
            "devlink:devlink_trap_report",
            "tracepoint",
            false,
            "tracepoint absent in this kernel (no devlink tracepoints): hardware traps not counted",
        ),
        (Some(_), Some(why)) => status("devlink:devlink_trap_report", "tracepoint", false, why),
        (Some(_), None) => match attach_tp(ebpf, "devlink_trap_report", "devlink", "devlink_trap_report") {
            Ok(()) => status(
                "devlink:devlink_trap_report",
                "tracepoint",
                true,
                "runs per packet a device traps and reports to devlink: counts per device, trap and input port",
            ),
            Err(e) => status(
                "devlink:devlink_trap_report",
                "tracepoint",
                false,
                crate::kernel::verifier::describe_failure("devlink_trap_report", &kbtf.release, &e).line,
            ),
        },
    });
    // tcp_drop() -- only on kernels that still have it, and only with kprobes.
    probes.push(match kbtf.tcp_drop_skip(tp.kprobes) {
        Some(why) => status("tcp_drop", "kprobe", false, why),
        None => match attach_kprobe(ebpf, "tcp_drop", "tcp_drop") {
            Ok(()) => status("tcp_drop", "kprobe", true, ""),
            Err(e) => status(
                "tcp_drop",
                "kprobe",
                false,
                crate::kernel::verifier::describe_failure("tcp_drop", &kbtf.release, &e).line,
            ),
        },
    });
    // The firewall chain of NETFILTER_DROP drops (kprobes) and the conntrack original tuple.
    if !options.floor {
        probes.push(program.fw.attach(ebpf, &kbtf.release));
        if program.config.flags & flag::NAT != 0 {
            probes.push(status("conntrack original tuple", "tp_btf", true, "read at the start of each flow run"));
        } else if let Some(Err(why)) = kbtf.fw.as_ref().map(|f| &f.nat) {
            probes.push(status("conntrack original tuple", "tp_btf", false, why.clone()));
        }
    }
    Ok(probes)
}

/// The exact counters read from the kernel maps at one instant (cumulative since attach).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawCounts {
    pub stats: Vec<u64>,
    pub drops: Vec<(DropKey, u64)>,
    /// Bytes dropped per (reason, location), with `Options::bytes` (else empty).
    pub drop_bytes: Vec<(DropKey, u64)>,
    pub flows: Vec<(FlowKey, u64)>,
    pub tx: Vec<(DevKey, u64)>,
    /// Namespaces whose device counters could not be read (their devices' TX is unknown).
    pub tx_unavailable: Vec<u32>,
    pub retrans: Vec<(FlowKey, u64)>,
    /// Flows counted only in a run-length cache so far (not inserted in the map yet).
    pub pending_new_flows: u64,
    /// Exact drops per (namespace, device, reason), with flows on (not bounded by the flow
    /// table; a namespace forgotten with [`Tracer::forget_netns`] is left out).
    pub netns: Vec<(NetnsKey, u64)>,
    /// TCP resets sent per flow of the RST (`tcp:tcp_send_reset`), the key's reason the reset
    /// reason (`enum sk_rst_reason`; 0 on a kernel before 6.10, whose tracepoint has none).
    pub resets: Vec<(FlowKey, u64)>,
    /// XDP exceptions per (program, action, device) (`xdp:xdp_exception`).
    pub xdp_exceptions: Vec<(pktloss_common::XdpExcKey, u64)>,
    /// Hardware traps per device, trap and input port (`devlink:devlink_trap_report`).
    pub traps: Vec<(pktloss_common::TrapKey, u64)>,
    /// Exact `NETFILTER_DROP` drops per (flow, table, chain, rule), with the firewall probes.
    pub firewall: Vec<(FwKey, u64)>,
    /// The conntrack original tuple of dropped flows whose packets were translated.
    pub nat: Vec<(FlowKey, NatTuple)>,
}

impl RawCounts {
    /// Value of a `pktloss_common::stat` counter.
    pub(crate) fn stat(&self, idx: u32) -> u64 {
        self.stats.get(idx as usize).copied().unwrap_or(0)
    }
}

/// What the programs need from the kernel's BTF, extracted up front so that the (large)
/// parsed BTF can be freed before the eBPF object is loaded.
#[derive(Clone, Debug)]
pub(crate) struct KernelFacts {
    pub offsets: Result<pktloss_common::Offsets, String>,
    pub kfree_btf: pktloss_common::KfreeBtfArgs,
    pub has_kfree_btf: bool,
    pub has_dev_queue_btf: bool,
    /// The kernel still has `tcp_drop()` (from kallsyms, filled in by the caller).
    pub has_tcp_drop: bool,
    /// `char *` fields read from BTF-typed pointers are dereferenceable read-only untrusted
    /// memory (`BPF_FEAT_RDONLY_CAST_TO_VOID`, 6.17+): `tp_btf` programs then read packet headers
    /// with plain fault-tolerant loads instead of `bpf_probe_read_kernel` calls.
    pub untrusted_mem_loads: bool,
    /// The kernel has the `bpf_get_current_task_btf` helper (5.11+).
    pub task_btf: bool,
    /// Code of `SKB_DROP_REASON_NOT_SPECIFIED` in the running kernel, when it has reasons
    /// (filled in by the caller from the reason table it already read from BTF).
    pub not_specified: Option<u32>,
    /// `uname -r`, for messages.
    pub release: String,
    /// `major.minor` of the running kernel, when `release` starts with it.
    pub version: Option<(u32, u32)>,
    /// The firewall-chain and NAT facts (filled in by the caller, which appends the modules'
    /// BTF); `None`: not resolved.
    pub fw: Option<crate::kernel::btf::FwFacts>,
    /// The netfilter walkers the kprobes attach to are in kallsyms (filled in by the caller).
    pub fw_syms: FwSyms,
}

/// Which netfilter functions kallsyms lists.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FwSyms {
    pub nft_do_chain: bool,
    pub nft_immediate_eval: bool,
    pub ipt_do_table: bool,
    pub ip6t_do_table: bool,
}

impl KernelFacts {
    /// Extract the facts from the parsed BTF.
    pub(crate) fn from_btf(kbtf: &KernelBtf) -> Self {
        Self {
            offsets: kbtf.offsets().map_err(|e| format!("{e:#}")),
            kfree_btf: kbtf.kfree_skb_args().unwrap_or_default(),
            has_kfree_btf: kbtf.has_tracepoint("kfree_skb"),
            has_dev_queue_btf: kbtf.has_tracepoint("net_dev_queue"),
            has_tcp_drop: false,
            untrusted_mem_loads: kbtf.has_enum_member("bpf_features", "BPF_FEAT_RDONLY_CAST_TO_VOID"),
            task_btf: kbtf.has_enum_member("bpf_func_id", "BPF_FUNC_get_current_task_btf"),
            not_specified: None,
            release: String::new(),
            version: None,
            fw: None,
            fw_syms: FwSyms::default(),
        }
    }

    /// Set the kernel release (`uname -r`) and the version parsed from it.
    pub(crate) fn with_release(mut self, release: &str) -> Self {
        release.clone_into(&mut self.release);
        self.version = parse_version(release);
        self
    }

    /// Why the `tcp_drop()` kprobe is not attached, when it is not (None: attach it).
    fn tcp_drop_skip(&self, kprobes: bool) -> Option<String> {
        if !self.has_tcp_drop {
            // 5.19 removed the function; before that a compiler may have inlined it.
            return Some(match self.version {
                Some(v) if v >= (5, 19) => "tcp_drop() is gone since 5.19 (drop reasons cover it)".to_owned(),
                _ => "tcp_drop() not in kallsyms: inlined by this kernel's compiler (its drops reach kfree_skb)"
                    .to_owned(),
            });
        }
        (!kprobes).then(|| "kernel has no kprobe support (CONFIG_KPROBES off)".to_owned())
    }
}

/// `(major, minor)` of a kernel release such as `6.1.0-57-amd64`.
pub(crate) fn parse_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Loaded and attached programs. Dropping it detaches everything.
pub(crate) struct Tracer {
    ebpf: Ebpf,
    _logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    ring: Option<Ring>,
    /// A malformed ring record was already reported.
    ring_malformed: bool,
    /// The last drain read enough to expect more at once (see [`Tracer::wait`]).
    streaming: bool,
    /// Dropping it stops the budget clock thread (see [`budget_clock`]).
    _budget_clock: Option<mpsc::Sender<()>>,
    /// State of each probe.
    pub probes: Vec<ProbeStatus>,
    /// The reason whose flows the programs key by location (`Config::location_keyed_reason`).
    pub location_keyed_reason: u32,
    /// The programs count dropped bytes (`Options::bytes`).
    bytes: bool,
}

fn status(name: &str, attach: &str, active: bool, note: impl Into<String>) -> ProbeStatus {
    ProbeStatus { name: name.to_owned(), attach: attach.to_owned(), active, note: note.into() }
}

/// Check the privileges needed to load programs: root, or `CAP_BPF` + `CAP_PERFMON`, or `CAP_SYS_ADMIN`.
pub(crate) fn check_privileges() -> Result<(), Error> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    // Say which capability is missing: each gives its own line.
    let missing: Vec<&str> = [
        (CAP_BPF, "CAP_BPF, needed to load the eBPF programs"),
        (CAP_PERFMON, "CAP_PERFMON, needed to attach the eBPF programs"),
    ]
    .into_iter()
    .filter(|(bit, _)| !has(*bit))
    .map(|(_, what)| what)
    .collect();
    Err(Error::MissingPrivilege(if missing.len() == 2 {
        "pktloss needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) to load its eBPF programs".to_owned()
    } else {
        format!("missing capability {} (CAP_SYS_ADMIN would cover it too)", missing.join(""))
    }))
}

fn raise_memlock() {
    let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: plain syscall with a valid pointer.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const rlim) };
    if ret != 0 {
        log::debug!(
            "could not raise RLIMIT_MEMLOCK ({}); fine on kernels >= 5.11 that charge BPF memory to the memcg",
            std::io::Error::last_os_error()
        );
    }
}

/// Whether the kernel can attach kprobes.
fn kprobes_available(tracefs: &std::path::Path) -> bool {
    tracefs.join("kprobe_events").exists() || PathBuf::from("/sys/bus/event_source/devices/kprobe").exists()
}

impl Tracer {
    /// Resolve offsets, load the object and attach every probe the kernel supports.
    pub(crate) fn start(options: Options, kbtf: &KernelFacts) -> Result<Self> {
        check_privileges()?;
        if EBPF_OBJECT.is_empty() {
            return Err(Error::NoPrograms.into());
        }
        check_options(&options)?;
        let tracefs = tracefs::root().map_err(Error::KernelInterface)?;
        let tp = TracepointFacts::read(&tracefs)?;
        let program = program_config(&options, kbtf, &tp)?;
        // Fault injection for the tests: a packet copy 8 bytes longer than the detail record
        // (a snap length past MAX_SNAPLEN), which every verifier must refuse (a real rejection,
        // to test how it is reported).
        let config = if std::env::var_os("PKTLOSS_TEST_SHORT_RECORDS").is_some() && options.snaplen > 0 {
            Config { snaplen: MAX_SNAPLEN as u32 + 8, ..program.config }
        } else {
            program.config
        };
        let options_bytes = options.bytes;
        log::debug!("config: {config:?}");

        raise_memlock();
        // One parse of the kernel BTF serves both the loader and the tp_btf attach. The loader
        // parses its own copy when created: drop it before parsing ours, so that two parsed
        // copies (about 10 MiB each) never live at once.
        let mut loader = EbpfLoader::new();
        loader.btf(None);
        let aya_btf =
            Btf::from_sys_fs().map_err(|e| Error::MissingKernelFeature(format!("cannot read kernel BTF: {e}")))?;
        loader.btf(Some(&aya_btf));
        loader.override_global("CONFIG", &config, true);
        loader.map_max_entries("EVENTS", options.ringbuf_bytes);
        if !options.stacks {
            loader.map_max_entries("STACKS", 1);
        }
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(|e| {
            Error::MissingKernelFeature(format!(
                "cannot load the eBPF object on kernel {}: {}",
                kbtf.release,
                crate::kernel::verifier::shorten(&format!("{e}").replace('\n', " "), 300)
            ))
        })?;
        let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
            Ok(l) => Some(l),
            Err(e) => {
                log::debug!("eBPF logger not initialised: {e}");
                None
            }
        };

        let probes = attach_probes(&mut ebpf, &aya_btf, kbtf, &tracefs, &options, &tp, &program)?;
        let ProgramConfig { location_keyed_reason, per_cpu, .. } = program;
        for p in &probes {
            if p.active {
                log::info!("probe {} attached via {}", p.name, p.attach);
            } else {
                log::info!("probe {} skipped: {}", p.name, p.note);
            }
        }

        let ring = if options.detail {
            match ebpf.take_map("EVENTS").ok_or_else(|| anyhow!("EVENTS map missing"))? {
                Map::RingBuf(data) => Some(Ring::new(data).context("EVENTS ring buffer")?),
                _ => bail!("EVENTS is not a ring buffer"),
            }
        } else {
            None
        };
        let budget_clock = if options.detail && per_cpu != u32::MAX {
            let map = ebpf.take_map("EPOCH").ok_or_else(|| anyhow!("EPOCH map missing"))?;
            Some(budget_clock(Array::try_from(map).context("EPOCH array")?)?)
        } else {
            None
        };
        Ok(Self {
            ebpf,
            _logger: logger,
            ring,
            ring_malformed: false,
            streaming: false,
            _budget_clock: budget_clock,
            probes,
            location_keyed_reason,
            bytes: options_bytes,
        })
    }

    /// File descriptor that becomes readable when detail events are waiting.
    pub(crate) fn ring_fd(&self) -> Option<RawFd> {
        self.ring.as_ref().map(Ring::fd)
    }

    /// Hand every waiting detail event to `f`; returns how many (malformed records are logged
    /// and skipped).
    pub(crate) fn drain(&mut self, mut f: impl FnMut(&DropEvent)) -> usize {
        let Some(ring) = self.ring.as_mut() else { return 0 };
        let mut n = 0;
        let drained = ring.drain(|rec| match decode::drop_event(rec) {
            Ok(ev) => {
                f(&ev);
                n += 1;
            }
            Err(e) => log::warn!("skipping malformed detail event: {e}"),
        });
        self.streaming = drained.bytes >= ring.size() / 16;
        if let Some(bad) = drained.malformed
            && !self.ring_malformed
        {
            self.ring_malformed = true;
            log::warn!("detail ring buffer: {bad:?}; no more detail events are read");
        }
        n
    }

    /// Wait up to `timeout_ms` for detail events (or just sleep when detail is off). While
    /// events stream in (the last drain read a sixteenth of the ring or more), sleep a
    /// millisecond instead: the reader then keeps up without being woken by the programs,
    /// whose wakeups interrupt the traced CPU. `also`, when given, ends the wait as soon as it
    /// is readable (`serve`'s scrape requests wake it through an eventfd).
    pub(crate) fn wait(&self, also: Option<RawFd>, timeout_ms: i32) {
        let (ring, timeout) =
            if self.streaming { (None, timeout_ms.clamp(0, 1)) } else { (self.ring_fd(), timeout_ms.max(0)) };
        // A negative fd is ignored by poll: with neither, it just sleeps for the timeout.
        let mut pfds = [also, ring].map(|fd| libc::pollfd { fd: fd.unwrap_or(-1), events: libc::POLLIN, revents: 0 });
        // SAFETY: two pollfds in a local array.
        unsafe { libc::poll(pfds.as_mut_ptr(), 2, timeout) };
    }

    /// Run-time statistics of the attached programs (see [`maps::program_stats`]).
    pub(crate) fn program_stats(&self) -> Vec<maps::ProgramStats> {
        maps::program_stats(&self.ebpf)
    }

    /// Sum of a per-CPU stat counter.
    pub(crate) fn stat(&self, idx: u32) -> u64 {
        if let Some(v) = run_stat(&self.runs(), idx) {
            return v;
        }
        self.ebpf
            .map("STATS")
            .and_then(|m| PerCpuArray::<_, u64>::try_from(m).ok())
            .and_then(|a| a.get(&idx, 0).ok())
            .map_or(0, |v| v.iter().sum())
    }

    /// The run-length cache of every CPU.
    fn runs(&self) -> Vec<RunCache> {
        self.ebpf
            .map("RUNS")
            .and_then(|m| PerCpuArray::<_, RunCache>::try_from(m).ok())
            .and_then(|a| a.get(&0, 0).ok())
            .map(|v| v.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Read every counter map.
    pub(crate) fn read(&self) -> Result<RawCounts> {
        let stats_map =
            PerCpuArray::<_, u64>::try_from(self.ebpf.map("STATS").ok_or_else(|| anyhow!("STATS missing"))?)?;
        let runs = self.runs();
        let stats = (0..stat::COUNT)
            .map(|i| run_stat(&runs, i).unwrap_or_else(|| stats_map.get(&i, 0).map_or(0, |v| v.iter().sum())))
            .collect();
        let mut raw = RawCounts {
            stats,
            drops: maps::sum_map::<DropKey>(&self.ebpf, "DROPS")?,
            drop_bytes: if self.bytes { maps::sum_map::<DropKey>(&self.ebpf, "DROP_BYTES")? } else { Vec::new() },
            flows: maps::sum_map::<FlowKey>(&self.ebpf, "FLOWS")?,
            tx: maps::sum_map::<DevKey>(&self.ebpf, "TX")?,
            tx_unavailable: Vec::new(),
            retrans: maps::sum_map::<FlowKey>(&self.ebpf, "RETRANS")?,
            pending_new_flows: 0,
            netns: maps::sum_map::<NetnsKey>(&self.ebpf, "NETNS_DROPS")?,
            resets: maps::sum_map::<FlowKey>(&self.ebpf, "RESETS")?,
            xdp_exceptions: maps::sum_map::<pktloss_common::XdpExcKey>(&self.ebpf, "XDP_EXCEPTIONS")?,
            traps: maps::sum_map::<pktloss_common::TrapKey>(&self.ebpf, "TRAPS")?,
            firewall: maps::sum_map::<FwKey>(&self.ebpf, "FW_DROPS")?,
            nat: self
                .ebpf
                .map("NAT_ORIG")
                .and_then(|m| aya::maps::HashMap::<_, FlowKey, NatTuple>::try_from(m).ok())
                .map(|m| m.iter().filter_map(Result::ok).collect())
                .unwrap_or_default(),
        };
        // Add what the per-CPU run-length caches have not flushed yet.
        for rc in &runs {
            if rc.drop_pending > 0 {
                merge(&mut raw.drops, rc.drop_key, rc.drop_pending);
            }
            if self.bytes && rc.drop_bytes_pending > 0 {
                merge(&mut raw.drop_bytes, rc.drop_key, rc.drop_bytes_pending);
            }
            if rc.flow_pending > 0 {
                if !raw.flows.iter().any(|(k, _)| *k == rc.flow_key) {
                    // A flow not inserted in the map yet: not an insert, not an eviction.
                    raw.pending_new_flows += 1;
                }
                merge(&mut raw.flows, rc.flow_key, rc.flow_pending);
                let k = &rc.flow_key;
                let ns = NetnsKey {
                    cookie: k.netns_cookie,
                    netns: k.netns,
                    ifindex: k.ifindex,
                    reason: rc.flow_drop_reason,
                    pad: 0,
                };
                merge(&mut raw.netns, ns, rc.flow_pending);
            }
            if rc.ns_pending > 0 {
                merge(&mut raw.netns, rc.ns_key, rc.ns_pending);
            }
            if rc.dev_pending > 0 {
                merge(&mut raw.tx, rc.dev_key, rc.dev_pending);
            }
        }
        sort_counts(&mut raw.drops);
        sort_counts(&mut raw.flows);
        sort_counts(&mut raw.tx);
        sort_counts(&mut raw.retrans);
        sort_counts(&mut raw.netns);
        sort_counts(&mut raw.resets);
        sort_counts(&mut raw.firewall);
        raw.nat.sort_unstable();
        Ok(raw)
    }

    /// The namespaces (inode, cookie) with drops so far: the keys of the per-namespace counts
    /// and the runs pending in the run-length caches (a small read, unlike [`Tracer::read`]).
    pub(crate) fn netns_with_drops(&self) -> Vec<(u32, u64)> {
        let mut out: Vec<(u32, u64)> = self
            .ebpf
            .map("NETNS_DROPS")
            .and_then(|m| PerCpuHashMap::<_, NetnsKey, u64>::try_from(m).ok())
            .map(|m| m.keys().filter_map(Result::ok).map(|k| (k.netns, k.cookie)).collect())
            .unwrap_or_default();
        for rc in self.runs() {
            if rc.flow_pending > 0 {
                out.push((rc.flow_key.netns, rc.flow_key.netns_cookie));
            }
            if rc.ns_pending > 0 {
                out.push((rc.ns_key.netns, rc.ns_key.cookie));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The (namespace, device, reason) keys with drops of one of `reasons` so far (a small read
    /// of the per-namespace map's keys and the run-length caches).
    pub(crate) fn netns_keys_of(&self, reasons: &[u32]) -> Vec<NetnsKey> {
        let mut out: Vec<NetnsKey> = self
            .ebpf
            .map("NETNS_DROPS")
            .and_then(|m| PerCpuHashMap::<_, NetnsKey, u64>::try_from(m).ok())
            .map(|m| m.keys().filter_map(Result::ok).filter(|k| reasons.contains(&k.reason)).collect())
            .unwrap_or_default();
        for rc in self.runs() {
            if rc.ns_pending > 0 && reasons.contains(&rc.ns_key.reason) {
                out.push(rc.ns_key);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Delete the per-namespace counts of namespaces that are gone (by cookie, or by inode
    /// where the kernel has no cookies), so that a long-running `serve` on a host where
    /// namespaces come and go keeps `NETNS_DROPS` bounded by the living ones. Returns how many
    /// keys were deleted. (A drop of such a namespace still pending in a run-length cache
    /// may insert its key again; the next call deletes it.)
    pub(crate) fn forget_netns(&mut self, gone: &dyn Fn(&NetnsKey) -> bool) -> usize {
        let Some(map) = self.ebpf.map_mut("NETNS_DROPS") else { return 0 };
        let Ok(mut map) = PerCpuHashMap::<_, NetnsKey, u64>::try_from(map) else { return 0 };
        let keys: Vec<NetnsKey> = map.keys().filter_map(Result::ok).filter(|k| gone(k)).collect();
        keys.iter().filter(|k| map.remove(k).is_ok()).count()
    }

    /// Detach every program (maps stay readable), so that a final [`Tracer::read`] is exact:
    /// nothing can move between the run-length caches and the maps while it reads.
    pub(crate) fn detach(&mut self) {
        use aya::programs::Program;
        for (name, prog) in self.ebpf.programs_mut() {
            let res = match prog {
                Program::BtfTracePoint(p) => p.unload(),
                Program::TracePoint(p) => p.unload(),
                Program::KProbe(p) => p.unload(),
                _ => Ok(()),
            };
            if let Err(e) = res {
                log::debug!("unloading {name}: {e}");
            }
        }
    }

    /// Instruction pointers of a kernel stack recorded with `--stacks` (innermost first).
    pub(crate) fn stack(&self, id: i32) -> Vec<u64> {
        let Ok(id) = u32::try_from(id) else { return Vec::new() };
        let Some(map) = self.ebpf.map("STACKS") else { return Vec::new() };
        let Ok(stacks) = StackTraceMap::try_from(map) else { return Vec::new() };
        stacks.get(&id, 0).map(|s| s.frames().iter().map(|f| f.ip).collect()).unwrap_or_default()
    }
}

/// Start the thread that advances the detail-budget epoch once a second, so that the programs
/// need no clock on the drop path. It ends when the returned sender is dropped.
fn budget_clock(mut epoch: Array<MapData, u32>) -> Result<mpsc::Sender<()>> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("budget-clock".to_owned())
        .spawn(move || {
            // It only writes one map: it keeps what that needs and nothing else.
            if let Err(e) = crate::host::caps::keep_only(&[caps::Capability::CAP_BPF, caps::Capability::CAP_SYS_ADMIN])
            {
                log::debug!("budget clock: {e}");
            }
            let mut n = 0u32;
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(1)) {
                n = n.wrapping_add(1);
                if let Err(e) = epoch.set(0, n, 0) {
                    log::warn!("cannot advance the detail budget epoch: {e}");
                    return;
                }
            }
        })
        .context("cannot start the budget clock thread")?;
    Ok(tx)
}

/// The stat counters kept in the run-length caches rather than in `STATS`.
fn run_stat(runs: &[RunCache], idx: u32) -> Option<u64> {
    let field: fn(&RunCache) -> u64 = match idx {
        stat::DROPS => |rc| rc.drops,
        stat::DETAIL_LOST_BUDGET => |rc| rc.budget_lost,
        stat::TX_PACKETS => |rc| rc.tx_packets,
        stat::DETAIL_SENT => |rc| rc.detail_sent,
        stat::FILTERED => |rc| rc.filtered,
        _ => return None,
    };
    Some(runs.iter().map(field).sum())
}

/// Add `n` to `key` in a (key, count) list.
fn merge<K: PartialEq>(list: &mut Vec<(K, u64)>, key: K, n: u64) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, c)) => *c += n,
        None => list.push((key, n)),
    }
}

/// Largest count first, then by key (stable output).
fn sort_counts<K: Ord>(list: &mut [(K, u64)]) {
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
}

fn attach_btf(ebpf: &mut Ebpf, prog: &str, tp: &str, btf: &Btf) -> Result<()> {
    let p: &mut BtfTracePoint = ebpf.program_mut(prog).ok_or_else(|| anyhow!("program {prog} missing"))?.try_into()?;
    p.load(tp, btf)?;
    p.attach()?;
    Ok(())
}

fn attach_tp(ebpf: &mut Ebpf, prog: &str, category: &str, name: &str) -> Result<()> {
    let p: &mut TracePoint = ebpf.program_mut(prog).ok_or_else(|| anyhow!("program {prog} missing"))?.try_into()?;
    p.load()?;
    p.attach(category, name)?;
    Ok(())
}

fn attach_kprobe(ebpf: &mut Ebpf, prog: &str, func: &str) -> Result<()> {
    let p: &mut KProbe = ebpf.program_mut(prog).ok_or_else(|| anyhow!("program {prog} missing"))?.try_into()?;
    p.load()?;
    p.attach(func, 0)?;
    Ok(())
}

fn attach_kfree(ebpf: &mut Ebpf, btf: &Btf, kbtf: &KernelFacts, classic: bool) -> Result<ProbeStatus> {
    const NAME: &str = "skb:kfree_skb";
    let mut why_not_btf = String::from("classic tracepoint requested (--classic)");
    let mut btf_log = None;
    if !classic {
        if kbtf.has_kfree_btf {
            match attach_btf(ebpf, "kfree_skb_btf", "kfree_skb", btf) {
                Ok(()) => return Ok(status(NAME, "tp_btf", true, "typed arguments, direct loads")),
                Err(e) => {
                    let failure = crate::kernel::verifier::describe_failure("kfree_skb_btf", &kbtf.release, &e);
                    log::info!("tp_btf not used, falling back to the classic tracepoint: {failure}");
                    why_not_btf = format!("tp_btf failed: {failure}");
                    btf_log = Some(failure.log);
                }
            }
        } else {
            "no BTF tracepoint btf_trace_kfree_skb".clone_into(&mut why_not_btf);
        }
    }
    match attach_tp(ebpf, "kfree_skb_tp", "skb", "kfree_skb") {
        Ok(()) => Ok(status(NAME, "tracepoint", true, format!("{why_not_btf}; offsets from tracefs"))),
        Err(e) => {
            let classic = crate::kernel::verifier::describe_failure("kfree_skb_tp", &kbtf.release, &e);
            // The tp_btf failure in a few words: the line is about the last program tried.
            let btf = match btf_log {
                Some(Some(log)) => format!("; tp_btf refused too, log in {}", log.display()),
                Some(None) => "; tp_btf failed too (-v for why)".to_owned(),
                None => String::new(),
            };
            bail!(Error::MissingKernelFeature(format!("cannot attach to skb:kfree_skb: {classic}{btf}")))
        }
    }
}

fn attach_dev_queue(
    ebpf: &mut Ebpf,
    btf: &Btf,
    kbtf: &KernelFacts,
    tracefs: &std::path::Path,
    classic: bool,
) -> ProbeStatus {
    const NAME: &str = "net:net_dev_queue";
    let note = if classic {
        "classic tracepoint requested (--classic); ".to_owned()
    } else if kbtf.has_dev_queue_btf {
        match attach_btf(ebpf, "net_dev_queue_btf", "net_dev_queue", btf) {
            Ok(()) => return status(NAME, "tp_btf", true, "typed arguments, direct loads"),
            Err(e) => {
                format!(
                    "tp_btf failed: {}; ",
                    crate::kernel::verifier::describe_failure("net_dev_queue_btf", &kbtf.release, &e)
                )
            }
        }
    } else {
        "no BTF tracepoint btf_trace_net_dev_queue; ".to_owned()
    };
    if !tracefs::exists(tracefs, "net", "net_dev_queue") {
        return status(NAME, "tracepoint", false, format!("{note}tracepoint absent in this kernel"));
    }
    match attach_tp(ebpf, "net_dev_queue_tp", "net", "net_dev_queue") {
        Ok(()) => status(NAME, "tracepoint", true, note.trim_end_matches("; ")),
        Err(e) => status(
            NAME,
            "tracepoint",
            false,
            format!("{note}{}", crate::kernel::verifier::describe_failure("net_dev_queue_tp", &kbtf.release, &e)),
        ),
    }
}

/// The name of the firewall-chain probe in the probe list.
pub(crate) const FIREWALL_PROBE: &str = "netfilter chains";

/// Which firewall-chain kprobes to attach, or why none.
#[derive(Debug)]
struct FwPlan {
    nft: bool,
    /// `nft_immediate_eval` too: jump targets and rule handles.
    imm: bool,
    ipt: bool,
    ip6t: bool,
    /// Why nothing is attached (when nothing is).
    why_not: Option<String>,
}

impl FwPlan {
    fn new(k: &KernelFacts, kprobes: bool, floor: bool) -> Self {
        let none = |why: String| Self { nft: false, imm: false, ipt: false, ip6t: false, why_not: Some(why) };
        let Some(fw) = k.fw.as_ref() else { return none("BTF not resolved".to_owned()) };
        if floor {
            return none("--floor".to_owned());
        }
        if fw.offsets.netfilter_drop_reason == u32::MAX {
            return none("the kernel has no NETFILTER_DROP drop reason (5.17+)".to_owned());
        }
        if !kprobes {
            return none("the kernel has no kprobe support".to_owned());
        }
        let s = k.fw_syms;
        let plan = Self {
            nft: fw.nft.is_ok() && s.nft_do_chain,
            imm: fw.nft.is_ok() && s.nft_do_chain && s.nft_immediate_eval,
            ipt: fw.ipt.is_ok() && s.ipt_do_table,
            ip6t: fw.ip6t.is_ok() && s.ip6t_do_table,
            why_not: None,
        };
        if plan.any() {
            return plan;
        }
        let mut why: Vec<String> = Vec::new();
        for (name, r, sym) in [
            ("nft", &fw.nft, s.nft_do_chain),
            ("iptables", &fw.ipt, s.ipt_do_table),
            ("ip6tables", &fw.ip6t, s.ip6t_do_table),
        ] {
            why.push(match r {
                Err(e) => format!("{name}: {e}"),
                Ok(()) if !sym => format!("{name}: not in kallsyms"),
                Ok(()) => continue,
            });
        }
        none(why.join("; "))
    }

    fn any(&self) -> bool {
        self.nft || self.ipt || self.ip6t
    }

    /// Attach the kprobes; the status says which, or that it falls back to rule counters.
    fn attach(&self, ebpf: &mut Ebpf, release: &str) -> ProbeStatus {
        let fallback = |why: &str| {
            status(
                FIREWALL_PROBE,
                "kprobe",
                false,
                format!("cannot attach ({why}), falling back to rule counters for firewall drops"),
            )
        };
        if let Some(why) = &self.why_not {
            return fallback(why);
        }
        let mut on = Vec::new();
        let mut errors = Vec::new();
        for (want, prog, func) in [
            (self.nft, "fw_nft_do_chain", "nft_do_chain"),
            (self.imm, "fw_nft_immediate", "nft_immediate_eval"),
            (self.ipt, "fw_ipt_do_table", "ipt_do_table"),
            (self.ip6t, "fw_ip6t_do_table", "ip6t_do_table"),
        ] {
            if !want {
                continue;
            }
            match attach_kprobe(ebpf, prog, func) {
                Ok(()) => on.push(func),
                Err(e) => errors
                    .push(format!("{func}: {}", crate::kernel::verifier::describe_failure(prog, release, &e).line)),
            }
        }
        if on.is_empty() {
            return fallback(&errors.join("; "));
        }
        let mut note = format!("table and chain of NETFILTER_DROP drops, at the entry of {}", on.join(", "));
        if !errors.is_empty() {
            let _ = std::fmt::Write::write_fmt(&mut note, format_args!(" (not: {})", errors.join("; ")));
        }
        status(FIREWALL_PROBE, "kprobe", true, note)
    }
}

/// Attach `tcp:tcp_send_reset` (resets by reason): its status says what it counts here.
fn attach_reset(ebpf: &mut Ebpf, fmt: Option<&tracefs::Format>, skip: Option<&str>, release: &str) -> ProbeStatus {
    const NAME: &str = "tcp:tcp_send_reset";
    let Some(fmt) = fmt else {
        return status(NAME, "tracepoint", false, "tracepoint absent in this kernel (4.16+): resets are not counted");
    };
    if let Some(why) = skip {
        return status(NAME, "tracepoint", false, why);
    }
    match attach_tp(ebpf, "tcp_send_reset", "tcp", "tcp_send_reset") {
        Ok(()) if fmt.offset("reason").is_some() => {
            status(NAME, "tracepoint", true, "runs per RST sent: resets per flow and reset reason")
        }
        Ok(()) => status(
            NAME,
            "tracepoint",
            true,
            "runs per RST sent; this kernel's tracepoint has no reset reason (6.10+) and sees only the resets of a socket: resets per flow, reason UNKNOWN",
        ),
        Err(e) => status(
            NAME,
            "tracepoint",
            false,
            crate::kernel::verifier::describe_failure("tcp_send_reset", release, &e).line,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `skb:kfree_skb` as 6.18 and 5.15 (no reason, no `rx_sk`) describe it.
    const KFREE_6_18: &str = "name: kfree_skb\nID: 2310\nformat:\n\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:void * rx_sk;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:unsigned short protocol;\toffset:32;\tsize:2;\tsigned:0;\n\tfield:enum skb_drop_reason reason;\toffset:36;\tsize:4;\tsigned:0;\n";
    const KFREE_5_15: &str = "name: kfree_skb\nID: 1443\nformat:\n\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:unsigned short protocol;\toffset:24;\tsize:2;\tsigned:0;\n";

    fn facts() -> KernelFacts {
        KernelFacts {
            offsets: Ok(pktloss_common::Offsets::default()),
            kfree_btf: pktloss_common::KfreeBtfArgs::default(),
            has_kfree_btf: true,
            has_dev_queue_btf: true,
            has_tcp_drop: false,
            untrusted_mem_loads: false,
            task_btf: true,
            not_specified: Some(2),
            release: "6.18.0".into(),
            version: Some((6, 18)),
            fw: None,
            fw_syms: FwSyms::default(),
        }
    }

    fn tp(kfree: &str, ncpus: usize) -> TracepointFacts {
        TracepointFacts {
            kfree: tracefs::parse_format(kfree).expect("format"),
            retrans: None,
            reset: None,
            xdp_exc: None,
            trap: None,
            kprobes: false,
            ncpus,
        }
    }

    /// The configuration follows the options and the kernel: flags, the reason keyed by
    /// location, the budget per CPU, the ring's check interval, the tracepoint's fields.
    #[test]
    fn the_configuration_is_built_from_options_and_facts() {
        let c = program_config(&Options::default(), &facts(), &tp(KFREE_6_18, 2)).expect("config");
        assert_eq!(c.config.flags & (flag::FLOWS | flag::DETAIL | flag::PACKET_BYTES | flag::TASK_BTF), {
            flag::FLOWS | flag::DETAIL | flag::PACKET_BYTES | flag::TASK_BTF
        });
        assert_eq!(c.config.flags & (flag::NO_REASONS | flag::STACKS | flag::BYTES | flag::FILTER), 0);
        assert_eq!((c.location_keyed_reason, c.config.location_keyed_reason), (2, 2), "NOT_SPECIFIED");
        assert_eq!(c.per_cpu, 500, "1000 a second over 2 CPUs");
        assert_eq!(c.config.detail_budget_per_cpu, 500);
        assert_eq!((c.config.kfree_tp.reason, c.config.kfree_tp.rx_sk), (36, 24));
        assert_eq!(c.config.check_bytes, (2 << 20) / 32);
        assert_eq!(c.config.wakeup_fill, (2 << 20) / 4);

        // A kernel without reasons; no detail, unlimited budget, 1 CPU.
        let o = Options { detail: false, detail_budget: None, ringbuf_bytes: 4096, ..Options::default() };
        let c = program_config(&o, &facts(), &tp(KFREE_5_15, 1)).expect("config");
        assert_eq!(c.config.flags & (flag::NO_REASONS | flag::DETAIL), flag::NO_REASONS);
        assert_eq!(c.location_keyed_reason, pktloss_common::REASON_NONE);
        assert_eq!(c.config.kfree_tp.reason, u32::MAX, "absent");
        assert_eq!(c.per_cpu, u32::MAX);
        assert_eq!(c.config.check_bytes, 4096, "never under a page");

        // No struct offsets: the kernel lacks a feature (exit 2).
        let broken = KernelFacts { offsets: Err("no sk_buff".into()), ..facts() };
        let e = program_config(&Options::default(), &broken, &tp(KFREE_6_18, 2)).expect_err("no offsets");
        assert!(matches!(e.downcast_ref::<Error>(), Some(Error::MissingKernelFeature(_))), "{e:#}");
    }
}
