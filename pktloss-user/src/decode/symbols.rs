//! Decode step: kernel addresses to `function+0xoff [module]` from /proc/kallsyms.
use std::fs;

use anyhow::{Context as _, Result, bail};

/// A sorted kernel symbol table, compact: one string arena plus (address, name range) per
/// text symbol (about 3 MiB for 120k symbols, instead of one allocation per name).
#[derive(Clone, Debug, Default)]
pub(crate) struct Kallsyms {
    names: String,
    syms: Vec<(u64, u32, u32)>,
}

impl Kallsyms {
    /// Read /proc/kallsyms. Fails when addresses are hidden (not root / `kptr_restrict`).
    pub(crate) fn load() -> Result<Self> {
        use std::io::BufRead as _;
        let f = fs::File::open("/proc/kallsyms").context("read /proc/kallsyms")?;
        let mut k = Self::default();
        for line in std::io::BufReader::with_capacity(1 << 16, f).lines() {
            k.add_line(&line.context("read /proc/kallsyms")?);
        }
        k.finish();
        if k.syms.is_empty() {
            bail!("/proc/kallsyms shows no addresses (needs CAP_SYSLOG; see kernel.kptr_restrict)");
        }
        Ok(k)
    }

    /// Parse kallsyms text; lines that do not parse and zero addresses are skipped.
    #[cfg(test)]
    pub(crate) fn parse(text: &str) -> Self {
        let mut k = Self::default();
        for l in text.lines() {
            k.add_line(l);
        }
        k.finish();
        k
    }

    fn add_line(&mut self, l: &str) {
        let mut it = l.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else { return };
        let Ok(addr) = u64::from_str_radix(addr, 16) else { return };
        if addr == 0 || !matches!(kind, "t" | "T" | "w" | "W") {
            return;
        }
        let start = self.names.len() as u32;
        self.names.push_str(name);
        if let Some(m) = it.next() {
            self.names.push(' ');
            self.names.push_str(m);
        }
        self.syms.push((addr, start, self.names.len() as u32));
    }

    fn finish(&mut self) {
        self.syms.sort_by_key(|(a, _, _)| *a);
        self.syms.shrink_to_fit();
        self.names.shrink_to_fit();
    }

    /// Number of symbols.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.syms.len()
    }

    /// Whether the table is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// Whether a text symbol named exactly `name` (in the kernel or a module) exists.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.syms.iter().any(|(_, s, e)| {
            self.names.get(*s as usize..*e as usize).is_some_and(|n| n.split(' ').next() == Some(name))
        })
    }

    /// The function containing `addr` and the offset into it.
    pub(crate) fn lookup(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.syms.partition_point(|(a, _, _)| *a <= addr);
        let (base, s, e) = self.syms.get(i.checked_sub(1)?)?;
        Some((self.names.get(*s as usize..*e as usize)?, addr - base))
    }

    /// `function+0xoff` (module in brackets), or the hex address when unknown.
    pub(crate) fn symbolize(&self, addr: u64) -> String {
        if addr == 0 {
            return "unknown".to_owned();
        }
        match self.lookup(addr) {
            Some((name, off)) => match name.split_once(' ') {
                Some((f, m)) => format!("{f}+{off:#x} {m}"),
                None => format!("{name}+{off:#x}"),
            },
            None => format!("{addr:#x}"),
        }
    }
}

/// The function of a location as [`Kallsyms::symbolize`] writes it (`func+0x1a [mod]` ->
/// `func`; an unresolved address stays as it is).
pub(crate) fn function_of(symbol: &str) -> &str {
    symbol.split('+').next().unwrap_or(symbol)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "ffffffff81000000 T _stext
ffffffff81a00000 T __udp4_lib_rcv
ffffffff81a00900 t udp_queue_rcv_one_skb
ffffffff81a01000 d some_data
ffffffffc0400000 t nft_do_chain\t[nf_tables]
0000000000000000 T hidden
garbage line
";

    #[test]
    fn symbolizes_with_offsets_and_modules() {
        let k = Kallsyms::parse(SAMPLE);
        assert_eq!(k.len(), 4);
        assert_eq!(k.symbolize(0xffffffff81a005e3), "__udp4_lib_rcv+0x5e3");
        assert_eq!(k.symbolize(0xffffffff81a00900), "udp_queue_rcv_one_skb+0x0");
        assert_eq!(k.symbolize(0xffffffffc0400010), "nft_do_chain+0x10 [nf_tables]");
        assert_eq!(k.symbolize(0x10), "0x10");
        assert_eq!(k.symbolize(0), "unknown");
        assert!(k.contains("nft_do_chain") && k.contains("__udp4_lib_rcv"));
        assert!(!k.contains("some_data") && !k.contains("hidden") && !k.contains("nft"));
    }

    #[test]
    fn empty_and_garbage() {
        assert!(Kallsyms::parse("").is_empty());
        assert!(Kallsyms::parse("zz zz zz\n\u{0}").is_empty());
    }
}
