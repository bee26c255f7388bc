//! An nftables table with drop rules on the input hook of a namespace, deleted on drop.
use std::{
    fmt::Write as _,
    io::Write as _,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::cmd;

/// `table inet TABLE { chain input { type filter hook input priority 0; policy accept; MATCH
/// counter drop; ... } }` in a namespace: one counted drop rule per match, in order. The table
/// is deleted on drop (it goes away with its namespace too).
pub struct NftDrop {
    ns: String,
    table: String,
    /// Delete the table on drop (else it goes with its namespace).
    delete: bool,
}

impl NftDrop {
    /// Load the table in the namespace `ns`; `matches` are nft match expressions
    /// (`udp dport 7001`).
    pub fn create(ns: &str, table: &str, matches: &[&str]) -> Result<Self> {
        let mut rules = String::new();
        for m in matches {
            let _ = writeln!(rules, "    {m} counter drop");
        }
        let text = format!(
            "table inet {table} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n{rules}  }}\n}}\n"
        );
        let mut nft = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .context("cannot start nft")?;
        let guard = Self { ns: ns.to_owned(), table: table.to_owned(), delete: true };
        if let Some(mut stdin) = nft.stdin.take() {
            stdin.write_all(text.as_bytes()).context("cannot write the nftables rules")?;
        }
        let status = nft.wait().context("nft")?;
        if !status.success() {
            bail!("nft could not load the drop rules of {table} in {ns} ({status})");
        }
        Ok(guard)
    }

    /// As [`NftDrop::create`] with one rule; panics when it cannot (for tests).
    pub fn new(ns: &str, table: &str, rule: &str) -> Self {
        Self::create(ns, table, &[rule]).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Leave the table in place until its namespace is deleted (for a rule made in a scenario
    /// whose namespaces outlive it).
    pub fn keep_with_namespace(mut self) {
        self.delete = false;
    }

    /// The name of the table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Packets the table's rules dropped so far (their counters summed).
    pub fn packets(&self) -> Result<u64> {
        let out = cmd(&["ip", "netns", "exec", &self.ns, "nft", "-j", "list", "table", "inet", &self.table])?;
        let v: Value = serde_json::from_str(&out).context("nft printed invalid JSON")?;
        let mut all = Vec::new();
        counters(&v, &mut all);
        if all.is_empty() {
            bail!("no counter in the nftables table {}", self.table);
        }
        Ok(all.iter().sum())
    }
}

impl Drop for NftDrop {
    fn drop(&mut self) {
        if !self.delete {
            return;
        }
        drop(
            Command::new("ip")
                .args(["netns", "exec", &self.ns, "nft", "delete", "table", "inet", &self.table])
                .stderr(Stdio::null())
                .status(),
        );
    }
}

/// Every rule counter's packets in `nft -j` output.
fn counters(v: &Value, out: &mut Vec<u64>) {
    match v {
        Value::Object(m) => {
            if let Some(p) = m.get("counter").and_then(|c| c.get("packets")).and_then(Value::as_u64) {
                out.push(p);
                return;
            }
            for x in m.values() {
                counters(x, out);
            }
        }
        Value::Array(a) => {
            for x in a {
                counters(x, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::counters;

    #[test]
    fn finds_the_rule_counters_in_nft_json() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
                {"table": {"family": "inet", "name": "pktlb", "handle": 1}},
                {"rule": {"family": "inet", "table": "pktlb", "chain": "input", "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 9}},
                    {"counter": {"packets": 1234, "bytes": 56789}}, {"drop": null}]}},
                {"rule": {"family": "inet", "table": "pktlb", "chain": "input", "expr": [
                    {"counter": {"packets": 6, "bytes": 100}}, {"drop": null}]}}]}"#,
        )
        .unwrap_or_default();
        let mut all = Vec::new();
        counters(&v, &mut all);
        assert_eq!(all, vec![1234, 6]);
    }
}
