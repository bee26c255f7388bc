//! Reading the programs' maps: per-CPU hash maps summed over CPUs (batched where the kernel
//! can), and the programs' run-time statistics.
use std::{
    fs,
    os::fd::{AsFd as _, AsRawFd as _, RawFd},
};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{Map, PerCpuHashMap},
};

/// A per-CPU hash map of `u64` counts, summed over CPUs (zero counts left out).
pub(super) fn sum_map<K: aya::Pod + Ord>(ebpf: &Ebpf, name: &str) -> Result<Vec<(K, u64)>> {
    let map = ebpf.map(name).ok_or_else(|| anyhow!("map {name} missing"))?;
    if let Map::PerCpuHashMap(data) | Map::PerCpuLruHashMap(data) = map
        && let Some(out) = batch_sum::<K>(data.fd().as_fd().as_raw_fd())
    {
        return Ok(out);
    }
    let map = PerCpuHashMap::<_, K, u64>::try_from(map).with_context(|| format!("map {name}"))?;
    let mut out = Vec::new();
    for item in &map {
        match item {
            Ok((k, v)) => {
                let total: u64 = v.iter().sum();
                if total > 0 {
                    out.push((k, total));
                }
            }
            // A key evicted or deleted between get_next_key and lookup: skip it.
            Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(e).with_context(|| format!("reading map {name}")),
        }
    }
    Ok(out)
}

/// The whole of a per-CPU hash map of `u64` values, summed over CPUs, read with
/// `BPF_MAP_LOOKUP_BATCH` (5.6+): a few system calls instead of two per key. Measured with 8k
/// flows: the key-by-key walk took 40-66 ms per read, which made every scrape of `serve` (and
/// every refresh of `top`) that slow. `None` when the kernel cannot (the caller walks the map).
fn batch_sum<K: aya::Pod>(fd: RawFd) -> Option<Vec<(K, u64)>> {
    /// `union bpf_attr` for the `BPF_MAP_*_BATCH` commands.
    #[repr(C)]
    #[derive(Default)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
    const CHUNK: usize = 4096;
    let cpus = aya::util::nr_cpus().ok()?;
    let key_size = size_of::<K>();
    let mut keys: Vec<K> = Vec::with_capacity(CHUNK);
    let mut values = vec![0u64; CHUNK * cpus];
    let (mut token_in, mut token_out) = (0u64, 0u64);
    let mut out = Vec::new();
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { (&raw const token_in) as u64 },
            out_batch: (&raw mut token_out) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: u32::try_from(fd).ok()?,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at buffers of CHUNK keys and CHUNK x ncpus values (per-CPU
        // values of 8 bytes, as the map's are); the kernel writes at most `count` of each.
        let rc = unsafe {
            libc::syscall(libc::SYS_bpf, BPF_MAP_LOOKUP_BATCH, &raw mut attr, size_of::<BatchAttr>() as libc::c_uint)
        };
        let err = if rc < 0 { std::io::Error::last_os_error().raw_os_error() } else { None };
        if rc < 0 && err != Some(libc::ENOENT) {
            // EINVAL/ENOTSUPP before 5.6, ENOSPC for a bucket larger than a chunk: walk instead.
            log::debug!("BPF_MAP_LOOKUP_BATCH: {}", std::io::Error::from_raw_os_error(err.unwrap_or(0)));
            return None;
        }
        let n = (attr.count as usize).min(CHUNK);
        // SAFETY: the kernel wrote `n` keys of `key_size` bytes (K is the map's key type).
        unsafe { keys.set_len(n) };
        debug_assert_eq!(key_size, size_of::<K>());
        for (i, k) in keys.iter().enumerate() {
            let total: u64 = values[i * cpus..(i + 1) * cpus].iter().sum();
            if total > 0 {
                out.push((*k, total));
            }
        }
        // SAFETY: shrinking to nothing; K is plain old data.
        unsafe { keys.set_len(0) };
        if err == Some(libc::ENOENT) {
            return Some(out);
        }
        token_in = token_out;
        first = false;
    }
}

/// Run-time statistics of one loaded program, as the kernel keeps them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProgramStats {
    pub name: String,
    /// `None` when `kernel.bpf_stats_enabled` is off (the kernel does not count).
    pub run_time_ns: Option<u64>,
    pub run_count: Option<u64>,
    /// Runs skipped because the program was already running on that CPU (a drop inside it).
    pub recursion_misses: Option<u64>,
}

/// Run-time statistics of the attached programs, from `/proc/self/fdinfo` of their file
/// descriptors (aya 0.14's `ProgramInfo` does not carry them): run time and count when
/// `kernel.bpf_stats_enabled` is on, recursion misses where the kernel counts them (5.12+).
pub(crate) fn program_stats(ebpf: &Ebpf) -> Vec<ProgramStats> {
    let ids: Vec<(String, u32)> =
        ebpf.programs().filter_map(|(name, p)| p.info().ok().map(|i| (name.to_owned(), i.id()))).collect();
    let enabled = fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").is_ok_and(|v| v.trim() == "1");
    let mut by_id: std::collections::HashMap<u32, std::collections::HashMap<String, u64>> =
        std::collections::HashMap::new();
    for e in fs::read_dir("/proc/self/fdinfo").into_iter().flatten().flatten() {
        let Ok(text) = fs::read_to_string(e.path()) else { continue };
        let kv: std::collections::HashMap<String, u64> = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter_map(|(k, v)| v.trim().parse().ok().map(|v| (k.trim().to_owned(), v)))
            .collect();
        if let Some(id) = kv.get("prog_id") {
            by_id.insert(*id as u32, kv);
        }
    }
    ids.into_iter()
        .filter_map(|(name, id)| {
            let kv = by_id.get(&id)?;
            Some(ProgramStats {
                name,
                run_time_ns: kv.get("run_time_ns").copied().filter(|_| enabled),
                run_count: kv.get("run_cnt").copied().filter(|_| enabled),
                recursion_misses: kv.get("recursion_misses").copied(),
            })
        })
        .collect()
}
