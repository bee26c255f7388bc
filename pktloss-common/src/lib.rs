//! Types shared by the eBPF programs (`pktloss-ebpf`) and userspace (`pktloss-user`).
//!
//! Every type is `#[repr(C)]`, `Copy` and free of implicit padding surprises so that the
//! kernel side writes exactly the bytes userspace reads. With the `user` feature the types
//! implement [`aya::Pod`] so they can be used as map keys and values.
#![no_std]

/// Largest number of packet bytes copied into one detail event.
pub const MAX_SNAPLEN: usize = 256;
/// Default number of packet bytes copied (enough for IPv6 + TCP with options).
pub const DEFAULT_SNAPLEN: u32 = 128;
/// Length of a task's `comm`.
pub const COMM_LEN: usize = 16;

/// Index of a counter in the per-CPU `STATS` array.
pub mod stat {
    /// Every `kfree_skb` drop (and `tcp_drop` call) seen. Counted in `RunCache::drops`
    /// (no extra map access per drop); userspace fills it in when it reads.
    pub const DROPS: u32 = 0;
    /// Detail events written to the ring buffer.
    pub const DETAIL_SENT: u32 = 1;
    /// Detail events lost because the ring buffer was full.
    pub const DETAIL_LOST_RINGBUF: u32 = 2;
    /// Detail events not sent because the per-second budget was spent (from
    /// `RunCache::budget_lost`, as for `DROPS`).
    pub const DETAIL_LOST_BUDGET: u32 = 3;
    /// New flows inserted in the flow LRU map.
    pub const FLOW_INSERTS: u32 = 4;
    /// Flow updates that failed (map update error): their drops are not in any flow.
    pub const FLOW_FAILS: u32 = 5;
    /// `bpf_get_stackid` failures (stack map full or collision).
    pub const STACK_FAILS: u32 = 6;
    /// Drops whose (reason, location) key could not be inserted (map full).
    pub const DROP_KEY_FAILS: u32 = 7;
    /// Packets seen on `net:net_dev_queue` (from `RunCache::tx_packets`, as for `DROPS`).
    pub const TX_PACKETS: u32 = 8;
    /// TCP retransmissions seen.
    pub const RETRANSMITS: u32 = 9;
    /// Retransmission flow inserts.
    pub const RETRANS_INSERTS: u32 = 10;
    /// Device counter update failures.
    pub const DEV_FAILS: u32 = 11;
    /// Drops seen by the `tcp_drop` kprobe.
    pub const TCP_DROP_CALLS: u32 = 12;
    /// Drops the filter left out (from `RunCache::filtered`, as for `DROPS`).
    pub const FILTERED: u32 = 13;
    /// Retransmissions the filter left out.
    pub const RETRANS_FILTERED: u32 = 14;
    /// Drops whose (namespace, device, reason) key could not be inserted in `NETNS_DROPS`
    /// (map full): they are in no per-namespace count.
    pub const NETNS_FAILS: u32 = 15;
    /// TCP resets sent (`tcp:tcp_send_reset`, 6.10+).
    pub const RESETS: u32 = 16;
    /// Resets the filter left out.
    pub const RESETS_FILTERED: u32 = 17;
    /// Reset flow inserts (the `RESETS` map is an LRU: evictions are inserts minus live keys).
    pub const RESET_INSERTS: u32 = 18;
    /// Number of counters.
    pub const COUNT: u32 = 19;
}

/// Bits of [`Config::flags`].
pub mod flag {
    /// Count per (5-tuple, netns, ifindex, reason) flow.
    pub const FLOWS: u32 = 1;
    /// Send per-drop detail events through the ring buffer.
    pub const DETAIL: u32 = 2;
    /// Record the kernel stack of each detail event (sampled, like the detail itself).
    pub const STACKS: u32 = 4;
    /// Copy packet bytes into detail events.
    pub const PACKET_BYTES: u32 = 8;
    /// The `tp_btf` programs may load packet bytes directly through `skb->head` (the kernel
    /// types `char *` fields of BTF pointers as read-only untrusted memory, 6.17+).
    pub const UNTRUSTED_LOADS: u32 = 16;
    /// The kernel has `bpf_get_current_task_btf` (5.11+): the `tp_btf` programs read the task
    /// name by direct loads instead of the `bpf_get_current_comm` helper.
    pub const TASK_BTF: u32 = 32;
    /// The kernel's `kfree_skb` has no drop reason (before 5.17): every drop has reason
    /// [`REASON_NONE`], whose flows are keyed by location (see
    /// [`Config::location_keyed_reason`]): each flow's drops are counted apart by where they
    /// happened, the one thing such a kernel says about why.
    pub const NO_REASONS: u32 = 64;
    /// Also count the bytes of the dropped packets (`skb->len`) per (reason, location), in
    /// `DROP_BYTES` (`serve`'s `drop_bytes_total`; one more load per drop).
    pub const BYTES: u32 = 128;
    /// Count only the drops (and retransmissions) that pass [`Config::filter`]; the others
    /// are counted in [`stat::FILTERED`] (and [`stat::RETRANS_FILTERED`]) and nowhere else.
    pub const FILTER: u32 = 256;
    /// The filter reads the device name ([`filter_word::DEV_NAME_LO`]): two more loads per
    /// drop, only when it asks for them.
    pub const FILTER_DEV_NAME: u32 = 512;
    /// Attribute `NETFILTER_DROP` drops to the table and chain the firewall probes saw.
    pub const FIREWALL: u32 = 1 << 20;
    /// Record the conntrack original tuple of a dropped flow (at the start of a flow run).
    pub const NAT: u32 = 1 << 21;
}

/// Atoms in a [`Filter`].
pub const FILTER_ATOMS: usize = 64;
/// [`FilterAtom::on_true`] / [`FilterAtom::on_false`]: the drop passes.
pub const FILTER_ACCEPT: u8 = 0xfe;
/// [`FilterAtom::on_true`] / [`FilterAtom::on_false`]: the drop is left out.
pub const FILTER_REJECT: u8 = 0xff;

/// The words a filter atom tests: the six words and the trailing u32 of a [`FlowKey`] as the
/// flow path builds them, then the drop reason and the device name.
pub mod filter_word {
    /// Source address, bytes 0..8 (an IPv4 address is the low 32 bits).
    pub const SADDR_LO: u32 = 0;
    pub const SADDR_HI: u32 = 1;
    pub const DADDR_LO: u32 = 2;
    pub const DADDR_HI: u32 = 3;
    /// `netns | ifindex << 32`.
    pub const DEV: u32 = 4;
    /// `flow reason | sport << 32 | dport << 48`.
    pub const REASON_PORTS: u32 = 5;
    /// `family | l4proto << 8 | ethertype << 16`.
    pub const PROTO: u32 = 6;
    /// The drop reason (0 for a retransmission).
    pub const REASON: u32 = 7;
    /// The device's name, bytes 0..8 and 8..16, as loaded (little-endian, NUL-padded).
    pub const DEV_NAME_LO: u32 = 8;
    pub const DEV_NAME_HI: u32 = 9;
    /// `1 << 16 | sport` for TCP, UDP and SCTP, else 0 (see [`super::derive_filter_words`]).
    pub const SPORT: u32 = 10;
    /// `1 << 16 | dport` for TCP, UDP and SCTP, else 0.
    pub const DPORT: u32 = 11;
    /// `1 << 32 | saddr` for IPv4, else 0.
    pub const SADDR4: u32 = 12;
    /// `1 << 32 | daddr` for IPv4, else 0.
    pub const DADDR4: u32 = 13;
    /// Number of words.
    pub const COUNT: u32 = 14;
}

/// Fill in the words derived from the flow words (ports of the protocols that have them,
/// IPv4 addresses of IPv4 packets), so that one atom tests a port or an IPv4 address with its
/// protocol or family (tcpdump's `port 53` is of TCP, UDP and SCTP only).
#[inline(always)]
pub fn derive_filter_words(w: &mut [u64; filter_word::COUNT as usize]) {
    let proto = w[filter_word::PROTO as usize];
    let l4 = (proto >> 8) & 0xff;
    let ports = w[filter_word::REASON_PORTS as usize] >> 32;
    let ported = l4 == 6 || l4 == 17 || l4 == 132;
    w[filter_word::SPORT as usize] = if ported { 1 << 16 | (ports & 0xffff) } else { 0 };
    w[filter_word::DPORT as usize] = if ported { 1 << 16 | (ports >> 16) } else { 0 };
    let v4 = proto & 0xff == 4;
    w[filter_word::SADDR4 as usize] = if v4 { 1 << 32 | (w[filter_word::SADDR_LO as usize] & 0xffff_ffff) } else { 0 };
    w[filter_word::DADDR4 as usize] = if v4 { 1 << 32 | (w[filter_word::DADDR_LO as usize] & 0xffff_ffff) } else { 0 };
}

/// One test of a filter: `lo <= word & mask <= hi`, then on to atom `on_true` or `on_false`
/// (or a verdict, [`FILTER_ACCEPT`] / [`FILTER_REJECT`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterAtom {
    /// One of [`filter_word`].
    pub word: u32,
    pub on_true: u8,
    pub on_false: u8,
    pub pad: u16,
    pub mask: u64,
    pub lo: u64,
    pub hi: u64,
}

/// A filter expression compiled to a decision graph of [`FilterAtom`]s (as libpcap compiles
/// one to BPF jumps): evaluation starts at `start` and follows `on_true`/`on_false`, each jump
/// going to a later atom, until a verdict.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Filter {
    pub start: u32,
    /// Atoms in use.
    pub len: u32,
    pub atoms: [FilterAtom; FILTER_ATOMS],
}

impl Default for Filter {
    fn default() -> Self {
        Self { start: u32::from(FILTER_REJECT), len: 0, atoms: [FilterAtom::default(); FILTER_ATOMS] }
    }
}

impl Filter {
    /// The verdict on the words of a drop: the kernel programs' walk of the decision graph (at
    /// most one step per atom, each jump to a later atom), which the unit tests run on the
    /// graphs userspace builds.
    #[inline(always)]
    pub fn passes(&self, words: &[u64; filter_word::COUNT as usize]) -> bool {
        let mut pc = self.start as usize;
        let mut steps = 0;
        while steps < FILTER_ATOMS {
            let Some(a) = self.atoms.get(pc) else { break };
            let x = words.get(a.word as usize).copied().unwrap_or(0) & a.mask;
            pc = usize::from(if a.lo <= x && x <= a.hi { a.on_true } else { a.on_false });
            steps += 1;
        }
        pc == usize::from(FILTER_ACCEPT)
    }
}

/// Reason code used for drops seen through the `tcp_drop()` kprobe (old kernels).
pub const REASON_TCP_DROP: u32 = 0x0001_0000;
/// Reason code of `kfree_skb` drops on kernels whose tracepoint has no reason (before 5.17):
/// the drop is counted by location and flow, its reason unknown.
pub const REASON_NONE: u32 = 0x0002_0000;

/// Userspace's reason-like code of the drops of an XDP program's `XDP_DROP` verdict, which the
/// kernel frees without a reason (`NOT_SPECIFIED` at `veth_xdp_rcv_skb`); no kernel reason has it.
pub const REASON_XDP_DROP: u32 = 0x0003_0000;
/// Its name.
pub const XDP_DROP: &str = "XDP_DROP";

/// Offsets of kernel struct members, resolved from the running kernel's BTF by userspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    /// `sk_buff.dev`
    pub skb_dev: u32,
    /// `sk_buff.sk`
    pub skb_sk: u32,
    /// `sk_buff.head`
    pub skb_head: u32,
    /// `sk_buff.data`
    pub skb_data: u32,
    /// `sk_buff.len`
    pub skb_len: u32,
    /// `sk_buff.tail` (an offset from `head` on 64-bit kernels)
    pub skb_tail: u32,
    /// `sk_buff.network_header`
    pub skb_network_header: u32,
    /// `sk_buff.transport_header`
    pub skb_transport_header: u32,
    /// `sk_buff.mac_header`
    pub skb_mac_header: u32,
    /// `sk_buff.protocol`
    pub skb_protocol: u32,
    /// `net_device.ifindex`
    pub dev_ifindex: u32,
    /// `net_device.nd_net` (a `possible_net_t` holding `struct net *`)
    pub dev_nd_net: u32,
    /// `net.ns.inum`
    pub net_inum: u32,
    /// `net.net_cookie`
    pub net_cookie: u32,
    /// `sock.__sk_common.skc_net`
    pub sock_net: u32,
    /// `task_struct.comm`
    pub task_comm: u32,
    /// `sock.sk_socket`
    pub sock_socket: u32,
    /// `sock.__sk_common.skc_state`
    pub sock_state: u32,
    /// `socket_alloc.vfs_inode` plus `inode.i_ino`: where a `struct socket`'s inode number is.
    pub socket_ino: u32,
    /// `net_device.name`
    pub dev_name: u32,
}

/// Offsets of the fields of the classic `skb:kfree_skb` tracepoint, read from tracefs.
/// A field that the kernel does not have is `u32::MAX`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KfreeTpOffsets {
    pub skbaddr: u32,
    pub location: u32,
    pub protocol: u32,
    pub reason: u32,
    pub rx_sk: u32,
}

impl Default for KfreeTpOffsets {
    fn default() -> Self {
        Self { skbaddr: 8, location: 16, protocol: u32::MAX, reason: u32::MAX, rx_sk: u32::MAX }
    }
}

/// Offsets of the fields of the classic `tcp:tcp_retransmit_skb` tracepoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetransTpOffsets {
    pub skaddr: u32,
    pub sport: u32,
    pub dport: u32,
    pub family: u32,
    pub saddr: u32,
    pub daddr: u32,
    pub saddr_v6: u32,
    pub daddr_v6: u32,
}

/// Offsets of the fields of the classic `tcp:tcp_send_reset` tracepoint (6.10+ has `reason`);
/// `saddr`/`daddr` are `sockaddr_in`/`sockaddr_in6` of the reset (its source is the sender).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetTpOffsets {
    pub skbaddr: u32,
    pub skaddr: u32,
    pub reason: u32,
    pub saddr: u32,
    pub daddr: u32,
    /// Before 6.10 the event has the fields of `tcp:tcp_retransmit_skb` (host-order ports, a
    /// family, IPv4 addresses in `saddr`/`daddr` and IPv6 ones apart): these are then set.
    pub sport: u32,
    pub dport: u32,
    pub family: u32,
    pub saddr_v6: u32,
    pub daddr_v6: u32,
}

impl Default for ResetTpOffsets {
    fn default() -> Self {
        Self {
            skbaddr: u32::MAX,
            skaddr: u32::MAX,
            reason: u32::MAX,
            saddr: u32::MAX,
            daddr: u32::MAX,
            sport: u32::MAX,
            dport: u32::MAX,
            family: u32::MAX,
            saddr_v6: u32::MAX,
            daddr_v6: u32::MAX,
        }
    }
}

/// Positions of the arguments of the `kfree_skb` BTF tracepoint (`btf_trace_kfree_skb`),
/// as indexes into the program context (the `void *__data` of the typedef is not in it).
/// `u32::MAX` means the kernel lacks it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KfreeBtfArgs {
    pub skb: u32,
    pub location: u32,
    pub reason: u32,
    pub rx_sk: u32,
}

impl Default for KfreeBtfArgs {
    fn default() -> Self {
        Self { skb: 0, location: 1, reason: 2, rx_sk: 3 }
    }
}

/// Everything the programs need from userspace, written into the `CONFIG` global at load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub offsets: Offsets,
    pub kfree_tp: KfreeTpOffsets,
    pub kfree_btf: KfreeBtfArgs,
    pub retrans_tp: RetransTpOffsets,
    pub reset_tp: ResetTpOffsets,
    pub xdp_exc_tp: XdpExcTpOffsets,
    pub trap_tp: TrapTpOffsets,
    /// Bits from [`flag`].
    pub flags: u32,
    /// Detail events allowed per second on each CPU; `u32::MAX` means no limit.
    pub detail_budget_per_cpu: u32,
    /// Packet bytes to copy into each detail event (at most [`MAX_SNAPLEN`]).
    pub snaplen: u32,
    /// Each CPU checks the ring's fill level once per this many detail bytes it produced.
    pub check_bytes: u32,
    /// ... and wakes the reader when more than this many bytes wait. The reader polls on its
    /// own (with a timeout, and every millisecond while events stream in), so it is woken only
    /// when it fell behind: a wakeup is an interrupt (on a VM, an exit) on the traced CPU.
    pub wakeup_fill: u32,
    /// Drops with this reason code are told apart by where they happened, not by why: their
    /// flows are keyed by the low half of the drop location in place of the reason (kernel
    /// text and modules lie in the top 4 GiB, so the word is at least 2^31 and cannot be a
    /// reason code). It is `NOT_SPECIFIED` (from the running kernel's BTF), or [`REASON_NONE`]
    /// on a kernel without drop reasons; [`NO_LOCATION_KEYED_REASON`] for none.
    pub location_keyed_reason: u32,
    /// What to count, with [`flag::FILTER`].
    pub filter: Filter,
    /// The firewall and conntrack offsets, with [`flag::FIREWALL`] or [`flag::NAT`].
    pub fw: FwOffsets,
}

/// Offsets and codes of the firewall-chain probes (`flag::FIREWALL`) and of the conntrack
/// original tuple (`flag::NAT`), from the kernel's BTF (vmlinux and the netfilter modules'
/// split BTF). `u32::MAX` where the kernel lacks one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwOffsets {
    /// The kernel's `SKB_DROP_REASON_NETFILTER_DROP`.
    pub netfilter_drop_reason: u32,
    /// `nft_pktinfo.skb`
    pub pkt_skb: u32,
    /// `nft_pktinfo.state` (or `xt.state`)
    pub pkt_state: u32,
    /// `nf_hook_state.hook` (u8)
    pub state_hook: u32,
    /// `nf_hook_state.pf` (u8)
    pub state_pf: u32,
    /// `nft_chain.name` (`char *`)
    pub chain_name: u32,
    /// `nft_chain.table`
    pub chain_table: u32,
    /// `nft_table.name` (`char *`)
    pub table_name: u32,
    /// `nft_table.family`: the byte offset of the u16 that holds it, and its shift and mask
    /// in that u16 (a bitfield in most kernels).
    pub table_family: u32,
    pub table_family_shift: u32,
    pub table_family_mask: u32,
    /// `nft_chain.blob_gen_0` and `blob_gen_1` (5.17+; `u32::MAX` before: no jump targets)
    pub chain_blob0: u32,
    pub chain_blob1: u32,
    /// `nft_rule_blob.size` and `.data`
    pub blob_size: u32,
    pub blob_data: u32,
    /// `nft_immediate_expr.data` and `.dreg`, from the start of the `nft_expr` (its `data`
    /// member plus the member offset)
    pub imm_verdict: u32,
    pub imm_chain: u32,
    pub imm_dreg: u32,
    /// `xt_table.name` (a `char[32]`)
    pub xt_table_name: u32,
    /// Argument positions of `ipt_do_table`/`ip6t_do_table`: skb, state, table.
    pub xt_arg_skb: u32,
    pub xt_arg_state: u32,
    pub xt_arg_table: u32,
    /// `sk_buff._nfct`
    pub skb_nfct: u32,
    /// `nf_conn.tuplehash` (the original direction's `tuple` is at its start)
    pub ct_tuple: u32,
    /// 1 when a rule blob is a sequence of 8-byte `nft_rule_dp` headers (`is_last:1, dlen:12,
    /// handle:42`) each followed by its expressions: the drop's rule handle is then found.
    pub rule_walk: u32,
}

impl Default for FwOffsets {
    fn default() -> Self {
        Self {
            netfilter_drop_reason: u32::MAX,
            pkt_skb: u32::MAX,
            pkt_state: u32::MAX,
            state_hook: u32::MAX,
            state_pf: u32::MAX,
            chain_name: u32::MAX,
            chain_table: u32::MAX,
            table_name: u32::MAX,
            table_family: u32::MAX,
            table_family_shift: 0,
            table_family_mask: 0,
            chain_blob0: u32::MAX,
            chain_blob1: u32::MAX,
            blob_size: u32::MAX,
            blob_data: u32::MAX,
            imm_verdict: u32::MAX,
            imm_chain: u32::MAX,
            imm_dreg: u32::MAX,
            xt_table_name: u32::MAX,
            xt_arg_skb: u32::MAX,
            xt_arg_state: u32::MAX,
            xt_arg_table: u32::MAX,
            skb_nfct: u32::MAX,
            ct_tuple: u32::MAX,
            rule_walk: 0,
        }
    }
}

/// Which netfilter walker saw a packet last ([`FwSlot::kind`], [`FwKey::kind`]).
pub mod fw_kind {
    pub const NFT: u8 = 1;
    pub const IPT: u8 = 2;
    pub const IP6T: u8 = 3;
}

/// Bytes of a table name and of a chain name in a [`FwKey`] (longer names are cut).
pub const FW_TABLE_LEN: usize = 32;
pub const FW_CHAIN_LEN: usize = 64;
/// Jump targets remembered per traversal ([`FwSlot::jumps`]).
pub const FW_JUMPS: usize = 4;

/// The last netfilter table a packet entered on this CPU (per-CPU, written by the firewall
/// probes, read by the drop path when the reason is `NETFILTER_DROP`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FwSlot {
    /// The `sk_buff`.
    pub skb: u64,
    /// Its `head`: an `sk_buff` freed and allocated again at the same address (slab reuse on
    /// the same CPU is common) for a packet that a hook other than a chain drops (conntrack)
    /// has another data buffer most of the time, and is not taken for the packet of the slot.
    pub head: u64,
    /// `nft_chain *` (nft) or `xt_table *` (iptables).
    pub obj: u64,
    /// The chain of the immediate `drop` verdict, when found among the base chain and its
    /// jump targets (nft, 5.17+), else 0 (the base chain's policy or another expression).
    pub drop_chain: u64,
    /// The rule handle of that verdict (0: unknown).
    pub handle: u64,
    /// Jump and goto targets taken in this traversal.
    pub jumps: [u64; FW_JUMPS],
    pub njumps: u32,
    pub kind: u8,
    pub pf: u8,
    pub hook: u8,
    pub pad: u8,
}

/// Key of the exact firewall-drop counters: the flow and the table, chain and rule.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FwKey {
    pub flow: FlowKey,
    /// nft rule handle, 0 when unknown.
    pub handle: u64,
    /// [`fw_kind`]
    pub kind: u8,
    /// `NFPROTO_*` of the hook (2 ipv4, 10 ipv6, 1 inet...).
    pub pf: u8,
    /// `NF_INET_*` hook number.
    pub hook: u8,
    /// 1 when the chain is a jump target found by the `drop` verdict, 0 the base chain.
    pub jumped: u8,
    pub pad: u32,
    pub table: [u8; FW_TABLE_LEN],
    pub chain: [u8; FW_CHAIN_LEN],
}

impl Default for FwKey {
    fn default() -> Self {
        Self {
            flow: FlowKey::default(),
            handle: 0,
            kind: 0,
            pf: 0,
            hook: 0,
            jumped: 0,
            pad: 0,
            table: [0; FW_TABLE_LEN],
            chain: [0; FW_CHAIN_LEN],
        }
    }
}

/// The conntrack original-direction tuple of a dropped packet's connection (`flag::NAT`),
/// kept per flow when it differs from the packet's own addresses or ports.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatTuple {
    pub saddr: [u8; 16],
    /// Network order, as in the kernel's tuple.
    pub sport: u16,
    /// `AF_INET`/`AF_INET6`
    pub l3num: u16,
    pub daddr: [u8; 16],
    /// Network order.
    pub dport: u16,
    pub protonum: u8,
    pub dir: u8,
}

/// [`Config::location_keyed_reason`] when no reason's flows are keyed by location.
pub const NO_LOCATION_KEYED_REASON: u32 = u32::MAX;

/// Key of the exact per-(reason, location[, stack]) drop counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropKey {
    /// Kernel address of the function that freed the skb.
    pub location: u64,
    /// Value of `enum skb_drop_reason`.
    pub reason: u32,
    /// Always -1 since stacks are sampled with the detail events (kept for the layout).
    pub stack_id: i32,
}

/// Key of the per-flow drop counters (and the per-flow retransmission counters).
///
/// Addresses are in network order; IPv4 addresses use the first four bytes.
/// Ports are in host order. For ICMP/ICMPv6, `sport` holds the type and `dport` the code.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Inode of the network namespace (as in `/proc/PID/ns/net`), 0 when unknown.
    pub netns: u32,
    /// Device index in that namespace, 0 when the skb had no device.
    pub ifindex: u32,
    /// Drop reason (0 for retransmissions).
    pub reason: u32,
    pub sport: u16,
    pub dport: u16,
    /// 4, 6, or 0 when the network header was not decodable.
    pub family: u8,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 `ICMPv6`, ...), 0 when unknown.
    pub l4proto: u8,
    /// `skb->protocol` (host order), e.g. 0x0800, 0x86dd, 0x0806.
    pub ethertype: u16,
    /// Always 0 (the programs write `family`..`ethertype` as one 64-bit word).
    pub pad: u32,
    /// The namespace's cookie (`net->net_cookie`, unique for the life of the boot, 5.12+; 0 on
    /// an older kernel): a namespace whose inode the kernel gave to an earlier one (inodes are
    /// reused) is still a flow of its own.
    pub netns_cookie: u64,
}

/// Key of the per-device transmit counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevKey {
    pub ifindex: u32,
    pub netns: u32,
}

/// Key of the exact per-namespace drop counts (`NETNS_DROPS`): the namespace (cookie, and
/// inode as in `/proc/PID/ns/net`), the device index in it (0: no device) and the drop reason
/// (the kernel's, not the flow key's location-keyed word). Counted at the end of each flow run,
/// so it needs [`flag::FLOWS`] and costs nothing while a run goes on; unlike the flow table it
/// is never evicted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetnsKey {
    /// The namespace's cookie (5.12+; 0 before, where `netns` alone tells them apart).
    pub cookie: u64,
    pub netns: u32,
    pub ifindex: u32,
    pub reason: u32,
    /// Always 0.
    pub pad: u32,
}

/// Key of the XDP exception counts (`xdp:xdp_exception`: an XDP program returned
/// `XDP_ABORTED`, or an action the driver does not support).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct XdpExcKey {
    pub prog_id: u32,
    /// The XDP action (0 `XDP_ABORTED`, 1 DROP, 2 PASS, 3 TX, 4 REDIRECT).
    pub act: u32,
    /// The device's index (in the namespace of the device; the tracepoint does not say which).
    pub ifindex: u32,
    /// Always 0.
    pub pad: u32,
}

/// Length of the device and trap names of a [`TrapKey`] (longer names are cut).
pub const TRAP_NAME_LEN: usize = 32;

/// Key of the hardware-trap counts (`devlink:devlink_trap_report`: a device reported a packet
/// it trapped or dropped). Names are NUL-padded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrapKey {
    /// The devlink device's bus (`pci`, `netdevsim`).
    pub bus: [u8; 16],
    /// The devlink device (`0000:03:00.0`, `netdevsim1`).
    pub dev: [u8; TRAP_NAME_LEN],
    /// The trap (`blackhole_route`, `ttl_value_is_too_small`).
    pub trap: [u8; TRAP_NAME_LEN],
    /// Its group (`l3_drops`).
    pub group: [u8; TRAP_NAME_LEN],
    /// The input port's net device (`NULL` when the driver gave none).
    pub input: [u8; 16],
}

impl Default for TrapKey {
    fn default() -> Self {
        Self {
            bus: [0; 16],
            dev: [0; TRAP_NAME_LEN],
            trap: [0; TRAP_NAME_LEN],
            group: [0; TRAP_NAME_LEN],
            input: [0; 16],
        }
    }
}

/// Offsets of the fields of the classic `devlink:devlink_trap_report` tracepoint (the names
/// are `__data_loc` strings, the input device a `char[16]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapTpOffsets {
    pub bus_name: u32,
    pub dev_name: u32,
    pub trap_name: u32,
    pub trap_group_name: u32,
    pub input_dev_name: u32,
    /// Always 0.
    pub pad: u32,
}

impl Default for TrapTpOffsets {
    fn default() -> Self {
        Self {
            bus_name: u32::MAX,
            dev_name: u32::MAX,
            trap_name: u32::MAX,
            trap_group_name: u32::MAX,
            input_dev_name: u32::MAX,
            pad: 0,
        }
    }
}

/// Offsets of the fields of the classic `xdp:xdp_exception` tracepoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpExcTpOffsets {
    pub prog_id: u32,
    pub act: u32,
    pub ifindex: u32,
}

impl Default for XdpExcTpOffsets {
    fn default() -> Self {
        Self { prog_id: u32::MAX, act: u32::MAX, ifindex: u32::MAX }
    }
}

/// Per-CPU run-length cache: consecutive events with the same key are counted here and
/// flushed into the hash maps only when the key changes, which saves a hash-map operation per
/// event during a flood. Userspace adds the pending counts of every CPU when it reads the
/// maps, and reads after detaching the programs at the end, so totals stay exact.
///
/// It also holds this CPU's detail budget (`budget_used` events were sent in budget epoch
/// `budget_epoch`; userspace advances the epoch in `EPOCH` once a second, so the programs
/// never read a clock on the drop path) and the hottest counters, which would otherwise cost a
/// `STATS` access per event.
///
/// The `kfree_skb` and `net_dev_queue` programs can nest on one CPU (an interrupt during one runs
/// the other), so each writes only its own fields: `dev_*` and `tx_packets` belong to
/// `net_dev_queue`, the rest to the drop programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunCache {
    // Fields of every drop first, so that a drop touches the first 104 bytes (two cache lines
    // when the slot is line-aligned) and not the transmit fields. A drop of a plain IPv4 run
    // compares its raw signature (`raw`, `raw_mask2`, `raw_dev`, `raw_misc`) and does not
    // read `flow_key`.
    pub drop_key: DropKey,
    pub drop_pending: u64,
    /// Drops seen ([`stat::DROPS`]).
    pub drops: u64,
    pub flow_pending: u64,
    /// Raw signature of the flow run, when its first packet was plain IPv4 (no IP options,
    /// at least 24 bytes from the network header): the first three little-endian words of
    /// the IPv4 header masked to what the flow key is made of ([`RAW_MASK0`], [`RAW_MASK1`],
    /// `raw_mask2`). A packet whose signature matches has the same flow key.
    pub raw: [u64; 3],
    /// Mask of the third word: the destination address, and the transport bytes that the
    /// key keeps for this protocol. Zero when the run has no raw signature.
    pub raw_mask2: u64,
    /// The run's namespace id (the low half of its cookie, or its inode before 5.12) and
    /// device: `id | ifindex << 32`.
    pub raw_dev: u64,
    /// The run's drop reason and `skb->protocol` as stored (big-endian): `reason | proto << 32`.
    pub raw_misc: u64,
    pub budget_epoch: u32,
    pub budget_used: u32,
    /// Detail events over budget ([`stat::DETAIL_LOST_BUDGET`]).
    pub budget_lost: u64,
    /// The flow key of the run (read when the run ends, or to compare a packet without a raw
    /// signature).
    pub flow_key: FlowKey,
    _pad: u32,
    /// Detail events sent ([`stat::DETAIL_SENT`]).
    pub detail_sent: u64,
    /// Detail bytes this CPU produced since it last checked the ring's fill level.
    pub ring_bytes: u32,
    _pad2: u32,
    pub dev_key: DevKey,
    pub dev_pending: u64,
    /// The `net_device` (and its `struct net`) whose resolved key is `dev_key`: a packet on the
    /// same device continues the run without resolving the key again.
    pub dev_ptr: u64,
    pub dev_net_ptr: u64,
    /// Packets seen on `net_dev_queue` ([`stat::TX_PACKETS`]).
    pub tx_packets: u64,
    /// Bytes of the drops of the (reason, location) run not yet added to `DROP_BYTES` (with
    /// [`flag::BYTES`]; last, so that the fields of every drop keep their places).
    pub drop_bytes_pending: u64,
    /// Drops the filter left out ([`stat::FILTERED`]).
    pub filtered: u64,
    /// The filter's verdict on the last drop it decoded, and that drop's raw signature (as
    /// `raw`, `raw_mask2`, `raw_dev` and `raw_misc` for flow runs; `filter_mask2` = 0: none):
    /// a drop with the same signature has the same flow key, reason and device, hence the
    /// same verdict, without decoding it.
    pub filter_raw: [u64; 3],
    pub filter_mask2: u64,
    pub filter_dev: u64,
    pub filter_misc: u64,
    /// 1: the last decoded drop passed.
    pub filter_pass: u64,
    /// The drop reason of the flow run (`flow_key.reason` is the location's for the reason
    /// that says nothing; the per-namespace counts keep the kernel's).
    pub flow_drop_reason: u32,
    _pad3: u32,
    /// The run of ended flow runs with one (namespace, device, reason) not yet added to
    /// `NETNS_DROPS`: a flood of many flows in one namespace costs a map update only when
    /// the namespace, device or reason changes.
    pub ns_key: NetnsKey,
    pub ns_pending: u64,
}

// The drop programs compare and store flow keys as u64 words: keep them 8-byte aligned.
const _: () = assert!(core::mem::offset_of!(RunCache, flow_key) % 8 == 0);
// The fields of every drop end with `budget_lost` (see the comment atop `RunCache`).
const _: () = assert!(core::mem::offset_of!(RunCache, budget_lost) + 8 == 104);

/// Mask of the first raw IPv4 word of a flow signature (see [`RunCache::raw`]): version and
/// IHL (byte 0) and the fragment offset (bytes 6 and 7 without the flags); not the TOS, total
/// length or identification.
pub const RAW_MASK0: u64 = 0xff1f_0000_0000_00ff;
/// Mask of the second raw IPv4 word: protocol (byte 9) and source address (bytes 12..16); not
/// the TTL or the checksum.
pub const RAW_MASK1: u64 = 0xffff_ffff_0000_ff00;
const _: () = assert!(size_of::<FlowKey>() == 64);

/// Where the captured bytes of a detail event start.
pub mod data_start {
    /// No bytes captured.
    pub const NONE: u8 = 0;
    /// At the network (IP) header.
    pub const NETWORK: u8 = 1;
    /// At `skb->data` (header offsets were not set).
    pub const DATA: u8 = 2;
}

/// One sampled drop, sent through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DropEvent {
    /// `bpf_ktime_get_ns()` (`CLOCK_MONOTONIC`).
    pub ts_ns: u64,
    pub location: u64,
    pub flow: FlowKey,
    pub stack_id: i32,
    /// Thread id and process id of the task that was running.
    pub tid: u32,
    pub pid: u32,
    pub cpu: u32,
    /// `skb->len`.
    pub skb_len: u32,
    /// Number of valid bytes in `data`.
    pub cap_len: u16,
    /// One of [`data_start`].
    pub data_start: u8,
    /// 1 when the tracepoint reported a receiving socket.
    pub has_rx_sk: u8,
    pub comm: [u8; COMM_LEN],
    /// Inode number of the socket of the drop (the receiving socket the tracepoint reports,
    /// 6.11+, else `skb->sk`), 0 when none: userspace finds its owner in `/proc/*/fd`.
    pub sk_ino: u64,
    /// That socket's state (`skc_state`: `TCP_ESTABLISHED` = 1 ...), 0 when none.
    pub sk_state: u8,
    pub pad: [u8; 7],
    pub data: [u8; MAX_SNAPLEN],
}

const _: () = assert!(core::mem::offset_of!(DropEvent, flow) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(DropEvent, comm) % 4 == 0);

/// Size of a full [`DropEvent`] in bytes (a record with [`MAX_SNAPLEN`] packet bytes).
pub const DROP_EVENT_SIZE: usize = size_of::<DropEvent>();
/// Bytes of a [`DropEvent`] before its packet bytes: the smallest valid record.
pub const DROP_EVENT_HEADER: usize = core::mem::offset_of!(DropEvent, data);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: `#[repr(C)]`, `Copy`, integers and structs of integers only: any bit pattern
    // is valid.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: `#[repr(C)]`, `Copy`, integers and integer arrays only: any bit pattern is valid.
    unsafe impl aya::Pod for super::DropKey {}
    // SAFETY: `#[repr(C)]`, `Copy`, integers and integer arrays only: any bit pattern is valid.
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: `#[repr(C)]`, `Copy`, integers and integer arrays only: any bit pattern is valid.
    unsafe impl aya::Pod for super::DevKey {}
    // SAFETY: `#[repr(C)]`, `Copy`, integers, integer arrays and keys of integers only: any bit
    // pattern is valid.
    unsafe impl aya::Pod for super::RunCache {}
    // SAFETY: `#[repr(C)]`, `Copy`, integers and integer arrays only: any bit pattern is valid.
    unsafe impl aya::Pod for super::NetnsKey {}
    // SAFETY: `#[repr(C)]`, `Copy`, integers and integer arrays only: any bit pattern is valid.
    unsafe impl aya::Pod for super::XdpExcKey {}
    // SAFETY: `#[repr(C)]`, `Copy`, byte arrays only (no padding): any bit pattern is valid.
    unsafe impl aya::Pod for super::TrapKey {}
    // SAFETY: `#[repr(C)]`, `Copy`, integers, integer arrays and keys of integers only: any bit
    // pattern is valid.
    unsafe impl aya::Pod for super::FwKey {}
    // SAFETY: `#[repr(C)]`, `Copy`, integers and integer arrays only: any bit pattern is valid.
    unsafe impl aya::Pod for super::FwSlot {}
    // SAFETY: `#[repr(C)]`, `Copy`, integers and integer arrays only: any bit pattern is valid.
    unsafe impl aya::Pod for super::NatTuple {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_stable() {
        assert_eq!(size_of::<DropKey>(), 16);
        assert_eq!(size_of::<FlowKey>(), 64);
        assert_eq!(size_of::<DevKey>(), 8);
        assert_eq!(size_of::<NetnsKey>(), 24);
        assert_eq!(size_of::<FwKey>(), 64 + 16 + FW_TABLE_LEN + FW_CHAIN_LEN);
        assert_eq!(size_of::<NatTuple>(), 40);
        assert_eq!(DROP_EVENT_SIZE % 8, 0);
        assert_eq!(DROP_EVENT_HEADER, 136);
        assert_eq!(DROP_EVENT_SIZE, DROP_EVENT_HEADER + MAX_SNAPLEN);
        assert_eq!(size_of::<Config>() % 4, 0);
    }
}
