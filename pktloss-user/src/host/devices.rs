//! Device names: each resolved inside the device's network namespace, cached.
use std::collections::{BTreeMap, HashMap};

use crate::host::netns::{self, NetnsRef};

/// Most names kept; the cache starts over when full (a name is one netlink query away).
const MAX_NAMES: usize = 4096;

/// Names of devices by (netns inode, ifindex).
#[derive(Default)]
pub(crate) struct DeviceNames {
    cache: HashMap<(u32, u32), String>,
    /// The namespaces, listed at the first miss since the last [`DeviceNames::refresh`].
    namespaces: Option<BTreeMap<u32, NetnsRef>>,
}

impl DeviceNames {
    /// Forget the list of namespaces: they come and go between two summaries.
    pub(crate) fn refresh(&mut self) {
        self.namespaces = None;
    }

    /// The name of device `ifindex` in namespace `ns`, empty when it cannot be found (a
    /// namespace gone or not reachable; not cached, as it may appear later).
    pub(crate) fn name(&mut self, ns: u32, ifindex: u32) -> String {
        if ifindex == 0 {
            return String::new();
        }
        if let Some(n) = self.cache.get(&(ns, ifindex)) {
            return n.clone();
        }
        let namespaces = self.namespaces.get_or_insert_with(netns::list);
        let Some(name) = namespaces.get(&ns).and_then(|r| netns::ifname_in(r, ifindex)) else {
            return String::new();
        };
        if self.cache.len() >= MAX_NAMES {
            self.cache.clear();
        }
        self.cache.insert((ns, ifindex), name.clone());
        name
    }
}
