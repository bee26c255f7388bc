//! Programs that drop every packet (tc: `TC_ACT_SHOT`; XDP: `XDP_DROP`), loaded with the `bpf()`
//! syscall from two instructions and pinned in a bpffs of their own, so that `tc filter add ...
//! bpf da pinned PATH` or `ip link set dev DEV xdpdrv pinned PATH` attaches them: real BPF
//! programs without a compiler or an object file.
use std::{ffi::CString, path::PathBuf};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_PROG_TYPE_XDP: u32 = 6;

/// `bpf(cmd, attr)` with a zero-padded attribute union of 128 bytes.
fn bpf(cmd: libc::c_long, attr: &[u8; 128]) -> libc::c_long {
    // SAFETY: attr is a readable buffer of the size passed.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_ptr(), attr.len()) }
}

/// The pinned program; unpinned (its bpffs unmounted) on drop, which unloads it once no tc
/// filter holds it.
pub struct PinnedDropProgram {
    dir: PathBuf,
    pub path: PathBuf,
}

impl PinnedDropProgram {
    /// A tc classifier returning `TC_ACT_SHOT` (2).
    pub fn load() -> Self {
        Self::load_as(BPF_PROG_TYPE_SCHED_CLS, 2, b"pktl_tdrop", "tc")
    }

    /// An XDP program returning `XDP_DROP` (1).
    pub fn load_xdp() -> Self {
        Self::load_as(BPF_PROG_TYPE_XDP, 1, b"pktl_xdrop", "xdp")
    }

    fn load_as(prog_type: u32, verdict: u8, name: &[u8; 10], tag: &str) -> Self {
        // r0 = verdict; exit.
        let insns: [u64; 2] =
            [u64::from_le_bytes([0xb7, 0, 0, 0, verdict, 0, 0, 0]), u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0])];
        Self::load_insns(prog_type, &insns, name, tag)
    }

    /// An XDP program of these instructions, named `name` (at most 15 bytes).
    pub fn load_xdp_insns(insns: &[u64], name: &[u8], tag: &str) -> Self {
        Self::load_insns(BPF_PROG_TYPE_XDP, insns, name, tag)
    }

    fn load_insns(prog_type: u32, insns: &[u64], name: &[u8], tag: &str) -> Self {
        assert!(name.len() < 16, "a BPF object name has at most 15 bytes");
        let dir = PathBuf::from(format!("/run/pktloss-test-bpf-{tag}-{}", std::process::id()));
        drop(std::fs::create_dir_all(&dir));
        let cdir = CString::new(dir.to_string_lossy().as_bytes()).expect("path");
        // SAFETY: NUL-terminated strings that outlive the call.
        let rc = unsafe { libc::mount(c"bpf".as_ptr(), cdir.as_ptr(), c"bpf".as_ptr(), 0, std::ptr::null()) };
        assert_eq!(rc, 0, "mount bpffs on {}: {}", dir.display(), std::io::Error::last_os_error());
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&prog_type.to_ne_bytes());
        attr[4..8].copy_from_slice(&u32::try_from(insns.len()).expect("count").to_ne_bytes());
        attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
        attr[16..24].copy_from_slice(&(c"GPL".as_ptr() as u64).to_ne_bytes());
        attr[48..48 + name.len()].copy_from_slice(name);
        let fd = bpf(BPF_PROG_LOAD, &attr);
        assert!(fd >= 0, "BPF_PROG_LOAD: {}", std::io::Error::last_os_error());
        let path = dir.join("drop");
        let cpath = CString::new(path.to_string_lossy().as_bytes()).expect("path");
        let mut pin = [0u8; 128];
        pin[0..8].copy_from_slice(&(cpath.as_ptr() as u64).to_ne_bytes());
        pin[8..12].copy_from_slice(&u32::try_from(fd).expect("fd").to_ne_bytes());
        let rc = bpf(BPF_OBJ_PIN, &pin);
        let err = std::io::Error::last_os_error();
        // SAFETY: fd is ours; the pin keeps the program.
        unsafe { libc::close(i32::try_from(fd).expect("fd")) };
        assert_eq!(rc, 0, "BPF_OBJ_PIN {}: {err}", path.display());
        Self { dir, path }
    }
}

impl Drop for PinnedDropProgram {
    fn drop(&mut self) {
        drop(std::fs::remove_file(&self.path));
        if let Ok(c) = CString::new(self.dir.to_string_lossy().as_bytes()) {
            // SAFETY: a NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        drop(std::fs::remove_dir(&self.dir));
    }
}
