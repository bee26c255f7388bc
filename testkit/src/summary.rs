//! Typed readers of the parts of pktloss's JSON that the tests and benchmarks read (the summary
//! of `capture --format json`, the causes of `diagnose --format json`): serde structs that
//! take what they name and leave the rest, so that a field's name is written once. A missing
//! field reads as its default (0, empty), as `Value`'s `null` compared unequal before.
use serde::Deserialize;
use serde_json::Value;

/// The summary of `pktloss capture --format json` (the parts read here).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub total_drops: u64,
    pub reasons: Vec<Reason>,
    pub flows: Vec<Flow>,
    pub filter: Option<Filter>,
}

impl Summary {
    /// Read a summary out of parsed JSON; panics (with the JSON) when it is not one.
    pub fn of(v: &Value) -> Self {
        Self::read(v).unwrap_or_else(|e| panic!("not a pktloss summary ({e}): {v:#}"))
    }

    /// Read a summary out of parsed JSON.
    pub fn read(v: &Value) -> Result<Self, serde_json::Error> {
        Self::deserialize(v)
    }

    /// Drops of a reason (0 when it is not listed).
    pub fn reason_count(&self, reason: &str) -> u64 {
        self.reasons.iter().find(|r| r.reason == reason).map_or(0, |r| r.count)
    }

    /// Drops of the flows that `pred` accepts.
    pub fn flow_count(&self, pred: impl Fn(&Flow) -> bool) -> u64 {
        self.flows.iter().filter(|f| pred(f)).map(|f| f.count).sum()
    }
}

/// Drops counted for one drop reason.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Reason {
    pub reason: String,
    pub count: u64,
}

/// Drops counted for one flow (with the device, reason and process of its drops).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Flow {
    pub proto: String,
    pub family: u8,
    pub src: String,
    pub sport: u16,
    pub dst: String,
    pub dport: u16,
    /// The namespace's inode.
    pub netns: u64,
    pub device: String,
    pub reason: String,
    pub location: String,
    pub count: u64,
    pub comm: String,
    pub pid: u32,
}

/// What a capture's filter left out.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Filter {
    pub expr: String,
    pub drops_filtered_out: u64,
}

/// A cause of `diagnose`, by its id (the lists of causes read here).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Cause {
    pub id: String,
    pub evidence: Vec<String>,
    pub advice: Vec<String>,
}

/// The causes in the list `list` of a diagnosis (`causes`, ...), in order; none when it has no
/// such list.
pub fn causes(diagnosis: &Value, list: &str) -> Vec<Cause> {
    diagnosis
        .get(list)
        .map(|l| Vec::<Cause>::deserialize(l).unwrap_or_else(|e| panic!("{list}: {e}")))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_names_and_defaults_the_rest() {
        let v = serde_json::json!({"total_drops": 7, "hostname": "h",
            "reasons": [{"reason": "NO_SOCKET", "code": 2, "count": 5}],
            "flows": [{"proto": "udp", "family": 4, "src": "127.0.0.1", "sport": 1, "dst": "127.0.0.1", "dport": 9,
                "netns": 4026531840u64, "reason": "NO_SOCKET", "code": 2, "count": 5, "ifindex": 1},
                {"proto": "icmp", "netns": 1, "reason": "NO_SOCKET", "count": 2}]});
        let s = Summary::of(&v);
        assert_eq!((s.total_drops, s.reason_count("NO_SOCKET"), s.reason_count("X")), (7, 5, 0));
        assert_eq!(s.flow_count(|f| f.netns == 4026531840 && f.dport == 9), 5);
        assert_eq!(s.flow_count(|f| f.reason == "NO_SOCKET"), 7);
        assert!(s.filter.is_none() && s.flows[1].src.is_empty());
        let d = serde_json::json!({"causes": [{"id": "no-listener", "drops": 3, "evidence": ["e"]}]});
        assert_eq!(causes(&d, "causes")[0].id, "no-listener");
        assert!(causes(&d, "outside").is_empty());
    }
}
