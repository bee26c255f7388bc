//! A veth pair between two namespaces, addressed and up.
use anyhow::Result;

use crate::cmd;

/// One end of a veth pair: the namespace it lives in, its name and its address (without the
/// prefix length).
#[derive(Clone, Debug)]
pub struct End {
    pub ns: String,
    pub name: String,
    pub ip: String,
}

impl End {
    pub fn new(ns: &str, name: &str, ip: &str) -> Self {
        Self { ns: ns.to_owned(), name: name.to_owned(), ip: ip.to_owned() }
    }
}

/// A veth pair, `a` in one namespace and `b` in another, each end addressed (`ip/prefix`) and up.
/// The pair goes away with its namespaces.
#[derive(Clone, Debug)]
pub struct Veth {
    pub a: End,
    pub b: End,
}

impl Veth {
    /// Make the pair, address both ends and set them up.
    pub fn create(a: End, b: End, prefix: u8) -> Result<Self> {
        cmd(&["ip", "link", "add", &a.name, "netns", &a.ns, "type", "veth", "peer", "name", &b.name, "netns", &b.ns])?;
        for end in [&a, &b] {
            cmd(&["ip", "-n", &end.ns, "addr", "add", &format!("{}/{prefix}", end.ip), "dev", &end.name])?;
        }
        for end in [&a, &b] {
            cmd(&["ip", "-n", &end.ns, "link", "set", &end.name, "up"])?;
        }
        Ok(Self { a, b })
    }

    /// As [`Veth::create`]; panics when it cannot (for tests).
    pub fn new(a: End, b: End, prefix: u8) -> Self {
        Self::create(a, b, prefix).unwrap_or_else(|e| panic!("veth: {e:#}"))
    }

    /// A permanent neighbour entry on each end for the other, so that no packet waits for ARP
    /// or neighbour discovery.
    pub fn static_neighbours(&self) -> Result<()> {
        let mac = |e: &End| cmd(&["ip", "netns", "exec", &e.ns, "cat", &format!("/sys/class/net/{}/address", e.name)]);
        let (mac_a, mac_b) = (mac(&self.a)?, mac(&self.b)?);
        for (from, to, to_mac) in [(&self.a, &self.b, mac_b.trim()), (&self.b, &self.a, mac_a.trim())] {
            cmd(&[
                "ip",
                "-n",
                &from.ns,
                "neigh",
                "replace",
                &to.ip,
                "lladdr",
                to_mac,
                "dev",
                &from.name,
                "nud",
                "permanent",
            ])?;
        }
        Ok(())
    }
}
