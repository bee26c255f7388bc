//! Capabilities: what the process holds, and dropping those it no longer needs.
//!
//! Capabilities are per thread on Linux: a drop applies to the calling thread and the threads
//! it starts afterwards, so it is made before the long-lived threads are started.
use caps::{CapSet, Capability};

/// What a long-running `serve` still needs once its programs are attached: reading the maps
/// (`CAP_BPF`: before 6.2 every `bpf()` command checks it when unprivileged BPF is off), entering
/// namespaces (`CAP_SYS_ADMIN`), reading qdiscs, rules and conntrack (`CAP_NET_ADMIN`; legacy
/// iptables also `CAP_NET_RAW`), finding the namespaces and sockets of other users' processes
/// (`CAP_SYS_PTRACE`, `CAP_DAC_READ_SEARCH`).
pub(crate) const SERVE_KEEPS: &[Capability] = &[
    Capability::CAP_BPF,
    Capability::CAP_SYS_ADMIN,
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_RAW,
    Capability::CAP_SYS_PTRACE,
    Capability::CAP_DAC_READ_SEARCH,
];

/// Keep only `keep` (of what the thread has) in its effective, permitted and inheritable sets,
/// clear its ambient set, and take the others out of its bounding set (so that the tools it
/// runs cannot regain them). Returns the capabilities dropped from the permitted set.
pub(crate) fn keep_only(keep: &[Capability]) -> Result<Vec<Capability>, String> {
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| format!("reading capabilities: {e}"))?;
    let dropped: Vec<Capability> = permitted.iter().filter(|c| !keep.contains(c)).copied().collect();
    // The bounding set first: dropping from it needs CAP_SETPCAP, itself dropped below.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).unwrap_or(false) {
        for c in caps::all() {
            if !keep.contains(&c) && caps::has_cap(None, CapSet::Bounding, c).unwrap_or(false) {
                caps::drop(None, CapSet::Bounding, c)
                    .map_err(|e| format!("dropping {c} from the bounding set: {e}"))?;
            }
        }
    }
    let kept: caps::CapsHashSet = permitted.iter().filter(|c| keep.contains(c)).copied().collect();
    caps::clear(None, CapSet::Ambient).map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    caps::set(None, CapSet::Inheritable, &caps::CapsHashSet::new())
        .map_err(|e| format!("clearing inheritable capabilities: {e}"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(|e| format!("setting effective capabilities: {e}"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| format!("setting permitted capabilities: {e}"))?;
    Ok(dropped)
}

/// The line to say when the process cannot enter other network namespaces (`setns` needs
/// `CAP_SYS_ADMIN`, which `CAP_BPF` and `CAP_PERFMON` do not give): their device names, device
/// TX counts and counters are then shown as unavailable, and this names what would give them.
pub(crate) fn namespaces_warning() -> Option<&'static str> {
    let has = caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).unwrap_or(true);
    (!has).then_some(
        "without CAP_SYS_ADMIN other network namespaces cannot be entered: their device names, TX counts and \
         counters are unavailable (grant CAP_SYS_ADMIN to read them)",
    )
}
