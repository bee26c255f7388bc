//! Hardware traps: the packets a device dropped and reported to devlink select hardware-trap,
//! counted per device and trap from the `devlink:devlink_trap_report` reports (with their group
//! and input port) or, where the kernel has no such tracepoint, from the growth of devlink's
//! trap statistics. Only traps of type `drop` count: exceptions went on to the kernel (its
//! drops of them are traced as drop events) and control traps are not loss.
use std::collections::BTreeMap;

use super::{CauseId, Verify, VerifyKind, ctx::Ctx, taxonomy};
use crate::model::{HwTraps, Summary, TrapKind};

/// The tracepoint that reports traps, as its probe line names it.
const TRAP_PROBE: &str = "devlink:devlink_trap_report";

/// One trap of one device, as the capture saw it.
#[derive(Default)]
struct Trap {
    group: String,
    /// Reports per input port (the tracepoint's).
    ports: BTreeMap<String, u64>,
    /// Growth of devlink's statistics, when read.
    stats: Option<u64>,
    /// The type devlink's dump gave, if read.
    kind: Option<TrapKind>,
}

impl Trap {
    fn reported(&self) -> u64 {
        self.ports.values().sum()
    }
}

/// The trap's type: devlink's, where it gave one this pktloss knows, else the generic traps'
/// table.
fn kind_of(trap: &str, devlink: Option<TrapKind>) -> Option<TrapKind> {
    match devlink {
        Some(k @ (TrapKind::Drop | TrapKind::Exception | TrapKind::Control)) => Some(k),
        Some(TrapKind::Other(_)) | None => taxonomy::trap_family(trap).map(|(_, k)| k),
    }
}

/// The traps of a summary per (device, trap).
fn traps(hw: &HwTraps) -> BTreeMap<(&str, &str), Trap> {
    let mut out: BTreeMap<(&str, &str), Trap> = BTreeMap::new();
    for r in &hw.reported {
        let t = out.entry((r.device.as_str(), r.trap.as_str())).or_default();
        t.group.clone_from(&r.group);
        *t.ports.entry(r.input_port.clone()).or_default() += r.count;
    }
    for s in &hw.stats {
        let t = out.entry((s.device.as_str(), s.trap.as_str())).or_default();
        t.stats = Some(t.stats.unwrap_or(0) + s.packets);
        t.kind = s.kind;
        if t.group.is_empty() {
            t.group.clone_from(&s.group);
        }
    }
    out
}

/// Whether the trap-report tracepoint ran during the capture.
fn tracepoint_active(s: &Summary) -> bool {
    s.probes.iter().any(|p| p.name == TRAP_PROBE && p.active)
}

/// Fills hardware-trap from the summary's trap reports and statistics.
pub(super) fn hardware_traps(cx: &mut Ctx<'_>) {
    let s = cx.input.summary;
    let traced = tracepoint_active(s);
    let all = traps(&s.hw_traps);
    let mut drops: Vec<((&str, &str), &Trap, u64)> = Vec::new();
    let mut exceptions = Vec::new();
    let mut unknown = Vec::new();
    for (id, t) in &all {
        let n = if traced { t.reported() } else { t.stats.unwrap_or(0) };
        match kind_of(id.1, t.kind) {
            Some(TrapKind::Drop) if n > 0 => drops.push((*id, t, n)),
            Some(TrapKind::Exception) if n > 0 => exceptions.push(format!("{} {} {n}", id.0, id.1)),
            None if n > 0 => unknown.push(format!("{} {} {n}", id.0, id.1)),
            _ => {}
        }
    }
    if drops.is_empty() {
        return;
    }
    drops.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let total: u64 = drops.iter().map(|d| d.2).sum();
    let a = cx.a(CauseId::HardwareTrap);
    a.select(total, total);
    let mut families: Vec<&'static str> = Vec::new();
    for ((device, trap), t, n) in &drops {
        let group = if t.group.is_empty() { String::new() } else { format!(", group {}", t.group) };
        let line = if traced {
            let ports: Vec<String> = t
                .ports
                .iter()
                .map(|(p, c)| format!("{} {c}", if p.is_empty() || p == "NULL" { "(none given)" } else { p }))
                .collect();
            let stats = match t.stats {
                Some(g) if g == *n => format!("; devlink's statistics grew by {g}: the same"),
                Some(g) => format!("; devlink's statistics grew by {g}"),
                None => "; devlink's statistics not read".to_owned(),
            };
            format!(
                "{device}: drop trap {trap}{group} dropped {n} packets (devlink:devlink_trap_report), input port {}{stats}",
                ports.join(", ")
            )
        } else {
            format!(
                "{device}: drop trap {trap}{group} dropped {n} packets (growth of devlink's trap statistics; no devlink:devlink_trap_report tracepoint on this kernel, so no input port)"
            )
        };
        a.ev(line);
        let port = t.ports.iter().max_by_key(|(_, c)| **c).map(|(p, _)| p.as_str()).filter(|p| *p != "NULL");
        let fill = |line: &str| {
            let l = line.replace("TRAP", trap).replace("DEV", device);
            match port {
                Some(p) => l.replace("PORT", p),
                None => l.replace("PORT", "<input port>"),
            }
        };
        match taxonomy::trap_family(trap) {
            Some((f, _)) => {
                a.adv(fill(f.advice));
                if let Some(c) = f.check
                    && !families.contains(&f.name)
                {
                    a.verify.push(Verify { kind: VerifyKind::Check, command: fill(c) });
                }
                families.push(f.name);
            }
            None => a.adv(format!(
                "{trap} on {device}: a trap of the driver's own; its meaning is in the driver's devlink documentation (Documentation/networking/devlink/DRIVER.rst)"
            )),
        }
        a.verify.push(Verify { kind: VerifyKind::Check, command: format!("devlink trap show {device} trap {trap}") });
        a.verify.push(Verify {
            kind: VerifyKind::Check,
            command: format!("devlink trap set {device} trap {trap} action trap (report each packet, to see them)"),
        });
        a.verify.push(Verify {
            kind: VerifyKind::Fix,
            command: format!("devlink -s trap show {device} trap {trap} (rx_packets stops increasing)"),
        });
    }
    if !exceptions.is_empty() {
        a.ev(format!(
            "exception traps, not counted here (the device handed these packets to the kernel, whose own drops of them are traced as drop events): {}",
            exceptions.join(", ")
        ));
    }
    if !unknown.is_empty() {
        a.ev(format!("traps of unknown type, not counted (devlink's statistics not read): {}", unknown.join(", ")));
    }
    if !s.hw_traps.note.is_empty() {
        a.ev(s.hw_traps.note.clone());
    }
}
