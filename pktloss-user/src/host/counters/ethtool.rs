//! NIC statistics and ring sizes through the ethtool ioctl (`SIOCETHTOOL`), in the calling
//! thread's namespace (the socket it is issued on belongs to that namespace).
//!
//! The ioctl rather than ethtool netlink: statistics by name (`ETHTOOL_GSTRINGS` +
//! `ETHTOOL_GSTATS`, what `ethtool -S` prints) exist only in the ioctl, on every kernel we
//! support, and ring sizes (`ETHTOOL_GRINGPARAM`) come with it; a few fixed-layout structs need
//! no crate.
use std::{collections::BTreeMap, io, os::fd::AsRawFd as _};

use super::{RingParams, parse::ethtool_key_is_interesting};

const SIOCETHTOOL: libc::Ioctl = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x3;
const ETHTOOL_GRINGPARAM: u32 = 0x10;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETHTOOL_GSSET_INFO: u32 = 0x37;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;
/// More statistics than any driver has: a larger count is refused as a bad answer.
const MAX_STATS: usize = 1 << 16;

/// A datagram socket to issue the ioctls on, in the calling thread's namespace.
pub(crate) struct Ethtool(std::os::fd::OwnedFd);

impl Ethtool {
    pub(crate) fn open() -> io::Result<Self> {
        let s = nix::sys::socket::socket(
            nix::sys::socket::AddressFamily::Inet,
            nix::sys::socket::SockType::Datagram,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        Ok(Self(s))
    }

    /// One `SIOCETHTOOL` on `dev` with `data` (a buffer whose first u32 is the command).
    fn ioctl(&self, dev: &str, data: &mut [u8]) -> io::Result<()> {
        // SAFETY: an all-zero ifreq is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        if dev.len() >= req.ifr_name.len() || dev.contains('\0') {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        for (d, b) in req.ifr_name.iter_mut().zip(dev.bytes()) {
            *d = b as libc::c_char;
        }
        req.ifr_ifru.ifru_data = data.as_mut_ptr().cast();
        // SAFETY: the kernel reads and writes at most the size the command implies, which each
        // caller allocated (the counts in the header bound the arrays after it).
        let r = unsafe { libc::ioctl(self.0.as_raw_fd(), SIOCETHTOOL, &raw mut req) };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// The number of statistics of `dev` (`ETHTOOL_GSSET_INFO` for `ETH_SS_STATS`).
    fn n_stats(&self, dev: &str) -> io::Result<usize> {
        // struct ethtool_sset_info { cmd, reserved, u64 sset_mask, u32 data[] }
        let mut b = [0u8; 24];
        b[..4].copy_from_slice(&ETHTOOL_GSSET_INFO.to_ne_bytes());
        b[8..16].copy_from_slice(&(1u64 << ETH_SS_STATS).to_ne_bytes());
        self.ioctl(dev, &mut b)?;
        let mask = u64::from_ne_bytes(b[8..16].try_into().unwrap_or([0; 8]));
        if mask & (1 << ETH_SS_STATS) == 0 {
            return Ok(0);
        }
        let n = u32::from_ne_bytes(b[16..20].try_into().unwrap_or([0; 4])) as usize;
        if n > MAX_STATS { Err(io::Error::from_raw_os_error(libc::EOVERFLOW)) } else { Ok(n) }
    }

    /// Drop/error statistics of `dev` by the driver's names (what `ethtool -S` prints, the
    /// names [`ethtool_key_is_interesting`] keeps). `EOPNOTSUPP` when the driver has none.
    pub(crate) fn stats(&self, dev: &str) -> io::Result<BTreeMap<String, u64>> {
        let n = self.n_stats(dev)?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        // struct ethtool_gstrings { cmd, string_set, len, u8 data[len * 32] }
        let mut names = vec![0u8; 12 + n * ETH_GSTRING_LEN];
        names[..4].copy_from_slice(&ETHTOOL_GSTRINGS.to_ne_bytes());
        names[4..8].copy_from_slice(&ETH_SS_STATS.to_ne_bytes());
        names[8..12].copy_from_slice(&(n as u32).to_ne_bytes());
        self.ioctl(dev, &mut names)?;
        // struct ethtool_stats { cmd, n_stats, u64 data[n_stats] }
        let mut vals = vec![0u8; 8 + n * 8];
        vals[..4].copy_from_slice(&ETHTOOL_GSTATS.to_ne_bytes());
        vals[4..8].copy_from_slice(&(n as u32).to_ne_bytes());
        self.ioctl(dev, &mut vals)?;
        let got = (u32::from_ne_bytes(vals[4..8].try_into().unwrap_or([0; 4])) as usize).min(n);
        let mut out = BTreeMap::new();
        for i in 0..got {
            let raw = &names[12 + i * ETH_GSTRING_LEN..12 + (i + 1) * ETH_GSTRING_LEN];
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            let name = String::from_utf8_lossy(&raw[..end]).trim().to_owned();
            let v = u64::from_ne_bytes(vals[8 + i * 8..16 + i * 8].try_into().unwrap_or([0; 8]));
            if !name.is_empty() && ethtool_key_is_interesting(&name) {
                out.insert(name, v);
            }
        }
        Ok(out)
    }

    /// The name of `dev`'s driver (`ETHTOOL_GDRVINFO`, what `ethtool -i` prints first:
    /// `virtio_net`, `veth`, `mlx5_core`...).
    pub(crate) fn driver(&self, dev: &str) -> io::Result<String> {
        // struct ethtool_drvinfo { cmd, char driver[32], version[32], fw_version[32],
        // bus_info[32], erom_version[32], reserved2[12], u32 x 5 }
        let mut b = [0u8; 196];
        b[..4].copy_from_slice(&ETHTOOL_GDRVINFO.to_ne_bytes());
        self.ioctl(dev, &mut b)?;
        let raw = &b[4..4 + ETH_GSTRING_LEN];
        let end = raw.iter().position(|c| *c == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    /// Ring sizes of `dev`, current and pre-set maximum (what `ethtool -g` prints); `None`
    /// when the driver reports none (`EOPNOTSUPP`, or all zero).
    pub(crate) fn ring(&self, dev: &str) -> io::Result<Option<RingParams>> {
        // struct ethtool_ringparam { cmd, rx_max, rx_mini_max, rx_jumbo_max, tx_max, rx,
        // rx_mini, rx_jumbo, tx }
        let mut b = [0u8; 36];
        b[..4].copy_from_slice(&ETHTOOL_GRINGPARAM.to_ne_bytes());
        match self.ioctl(dev, &mut b) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(None),
            Err(e) => return Err(e),
        }
        let w = |i: usize| u32::from_ne_bytes(b[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4]));
        let (rx_max, tx_max, rx, tx) = (w(1), w(4), w(5), w(8));
        if rx == 0 && rx_max == 0 && tx == 0 {
            return Ok(None);
        }
        Ok(Some(RingParams {
            dev: dev.to_owned(),
            rx: Some(rx),
            rx_max: Some(rx_max),
            tx: Some(tx),
            tx_max: Some(tx_max),
        }))
    }
}
