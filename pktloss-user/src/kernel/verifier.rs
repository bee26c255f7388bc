//! Kernel step: a program the kernel refused to load, said in one line.
//!
//! A verifier log runs to hundreds of kilobytes. The line a user needs is which program, on
//! which kernel, the failing instruction and the verifier's message; the whole log goes to a
//! file (0600) named in that line.
use std::{
    fs::OpenOptions,
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

/// Lines the verifier prints after its verdict (statistics), skipped when looking for it.
fn is_statistics(line: &str) -> bool {
    ["verification time", "stack depth", "processed ", "max_states_per_insn", "mark_read"]
        .iter()
        .any(|p| line.starts_with(p))
}

/// Drop the `; source` annotation the verifier prints after an instruction.
fn without_source(line: &str) -> &str {
    line.split(" ; ").next().unwrap_or(line).split("\t;").next().unwrap_or(line).trim()
}

/// Whether a log line is an instruction (`1944: (85) call bpf_probe_read_kernel#113`).
fn is_instruction(line: &str) -> bool {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(": (")
}

/// The verifier's verdict: the last instruction it looked at and the messages it printed after
/// it, as `"<insn>: <message>; <message>"` (at most 300 characters). Empty when the log is.
pub(crate) fn verdict(log: &str) -> String {
    let lines: Vec<&str> =
        log.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with(';') && !is_statistics(l)).collect();
    let Some(last) = lines.len().checked_sub(1) else {
        return String::new();
    };
    let at = lines.iter().rposition(|l| is_instruction(l));
    let (insn, messages) = match at {
        // The refused instruction, and what the verifier said after it.
        Some(i) if i < last => (Some(without_source(lines[i])), &lines[i + 1..]),
        // Nothing after the last instruction: the message is on its line.
        _ => (None, &lines[last..]),
    };
    let messages: Vec<&str> = messages.iter().map(|l| without_source(l)).collect();
    let text = match insn {
        Some(insn) => format!("{insn}: {}", messages.join("; ")),
        None => messages.join("; "),
    };
    shorten(&text, 300)
}

/// At most `max` characters, with an ellipsis when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Write the full log of `program` to a new 0600 file in `dir`; its path, or `None` if it
/// could not be written.
pub(crate) fn save_log(dir: &Path, program: &str, log: &str) -> Option<PathBuf> {
    let path = dir.join(format!("pktloss-{}-{program}.verifier.log", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .ok()?;
    f.write_all(log.as_bytes()).ok()?;
    Some(path)
}

/// A program that failed to load or attach, said in one line.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// The line: the kernel's verdict and where its full log is when the verifier refused the
    /// program, else the error itself (shortened).
    pub line: String,
    /// The file holding the verifier's full log, when there is one.
    pub log: Option<PathBuf>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

/// Describe why `program` could not be loaded or attached on kernel `kernel`.
pub(crate) fn describe_failure(program: &str, kernel: &str, err: &anyhow::Error) -> Failure {
    let rejected = err.chain().find_map(|e| match e.downcast_ref::<aya::programs::ProgramError>() {
        Some(aya::programs::ProgramError::LoadError { io_error, verifier_log }) => {
            Some((io_error.to_string(), verifier_log.to_string()))
        }
        _ => None,
    });
    match rejected {
        Some((io, log)) => {
            log::debug!("verifier log of {program}:\n{log}");
            let verdict = verdict(&log);
            let verdict = if verdict.is_empty() { "no verifier output".to_owned() } else { verdict };
            let saved = save_log(&std::env::temp_dir(), program, &log);
            let where_ = saved
                .as_ref()
                .map_or_else(|| "full log with -vv".to_owned(), |p| format!("full log in {}", p.display()));
            Failure { line: format!("kernel {kernel} refused {program} ({io}): {verdict} ({where_})"), log: saved }
        }
        None => {
            Failure { line: format!("{program}: {}", shorten(&format!("{err:#}").replace('\n', " "), 300)), log: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The last lines of a real verifier log: kernel 6.18 refusing the classic `kfree_skb`
    /// program whose records `PKTLOSS_TEST_SHORT_RECORDS` made 8 bytes too short.
    const LOG_TAIL: &str = "\
1244: (0f) r3 += r1                   ; frame1: R1=0 R3=scalar(id=69+0,umin=1) refs=66
; let dst = addr_of!((*ev).data) as *mut core::ffi::c_void; @ main.rs:839
1245: (79) r1 = *(u64 *)(r10 -48)     ; frame1: R1=ringbuf_mem(ref_obj_id=66,sz=232) R10=fp0 fp-48=ringbuf_mem(ref_obj_id=66,sz=232) refs=66
1246: (07) r1 += 108                  ; frame1: R1=ringbuf_mem(ref_obj_id=66,off=108,sz=232) refs=66
; fun(dst, size, unsafe_ptr) @ helpers.rs:1178
1247: (bf) r2 = r9                    ; frame1: R2=128 R9=128 refs=66
1248: (85) call bpf_probe_read_kernel#113
invalid access to memory, mem_size=232 off=108 size=128
R1 min value is outside of the allowed memory range
verification time 11225 usec
stack depth 152+16+96+128
processed 2518 insns (limit 1000000) max_states_per_insn 5 total_states 188 peak_states 185 mark_read 0
";

    #[test]
    fn verdict_is_the_refused_instruction_and_the_last_message() {
        assert_eq!(
            verdict(LOG_TAIL),
            "1248: (85) call bpf_probe_read_kernel#113: invalid access to memory, mem_size=232 off=108 size=128; \
             R1 min value is outside of the allowed memory range"
        );
    }

    #[test]
    fn verdict_of_an_empty_log_is_empty_and_long_ones_are_cut() {
        assert_eq!(verdict(""), "");
        assert_eq!(verdict("verification time 5 usec\n"), "");
        assert_eq!(verdict("0: (85) invalid func unknown#195896080\n"), "0: (85) invalid func unknown#195896080");
        let long = format!("0: (85) call foo#1\n{}\n", "x".repeat(1000));
        let v = verdict(&long);
        assert_eq!(v.chars().count(), 300);
        assert!(v.ends_with('…'));
    }

    #[test]
    fn saved_log_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("pktl-verifier-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let p = save_log(&dir, "kfree_skb_tp", LOG_TAIL).expect("saved");
        assert_eq!(std::fs::read_to_string(&p).expect("read"), LOG_TAIL);
        assert_eq!(std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777, 0o600);
        drop(std::fs::remove_dir_all(&dir));
    }
}
