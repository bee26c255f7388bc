//! Output files (`-o FILE`, `--pcapng FILE`): proven writable before a capture starts, and
//! written privately (mode 0600) and atomically at its end.
//!
//! The bytes go to an unnamed file (`O_TMPFILE`) in the target's directory, which gets a name
//! only once it is written and synced: a kill during the write (a large capture on a slow disk
//! takes seconds) leaves nothing behind, where a named temporary file would stay, hidden, 0600,
//! holding packet bytes. Removing such leftovers on the next run by the PID in their name was
//! the other way, and was not taken: a PID means nothing across PID namespaces (a pktloss in a
//! container writing to a shared directory would have its live temporary file removed under
//! it), PIDs are reused, and a leftover stays until some later run happens to write to the same
//! directory. A new file is linked straight to its name (`linkat` fails rather than replace);
//! one that replaces a file is linked under a temporary name and renamed over it, so the two
//! calls after the sync are the only window. Filesystems without `O_TMPFILE` (some network and
//! FUSE filesystems) get a named temporary file, removed on every error.
use std::{
    fs,
    io::{self, Write as _},
    os::{fd::AsRawFd as _, unix::fs::OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, anyhow};

/// What is written at start to prove the target's filesystem has room: one block (a full
/// tmpfs or disk refuses even that with `ENOSPC`).
const PROBE: [u8; 4096] = [0; 4096];

/// A file being written in the target's directory.
enum Temp {
    /// `O_TMPFILE`: no name until [`Temp::publish`].
    Unnamed(fs::File),
    /// The fallback: a named `.NAME.tmp-PID`.
    Named(fs::File, PathBuf),
}

/// The directory of `path` (`.` for a bare file name) and its file name.
fn split(path: &Path) -> Result<(PathBuf, String)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().with_context(|| format!("{}: not a file name", path.display()))?;
    Ok((dir, name.to_string_lossy().into_owned()))
}

fn temp_name(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

impl Temp {
    /// Open a file in `dir`, mode 0600: unnamed where the filesystem can, else named.
    fn create(dir: &Path, name: &str) -> io::Result<Self> {
        match fs::OpenOptions::new().write(true).custom_flags(libc::O_TMPFILE).mode(0o600).open(dir) {
            Ok(f) => Ok(Self::Unnamed(f)),
            // EOPNOTSUPP: the filesystem has no O_TMPFILE; EISDIR: the kernel does not know it.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                let tmp = temp_name(dir, name);
                let f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
                Ok(Self::Named(f, tmp))
            }
            Err(e) => Err(e),
        }
    }

    fn file(&mut self) -> &mut fs::File {
        match self {
            Self::Unnamed(f) | Self::Named(f, _) => f,
        }
    }

    /// Give the written file the name `path` (replacing what is there).
    fn publish(self, dir: &Path, name: &str, path: &Path) -> Result<()> {
        match self {
            Self::Named(f, tmp) => {
                drop(f);
                rename_or_remove(&tmp, path)
            }
            Self::Unnamed(f) => {
                let fd = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
                let link = |to: &Path| {
                    nix::unistd::linkat(None, fd.as_path(), None, to, nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW)
                };
                match link(path) {
                    Ok(()) => Ok(()),
                    Err(nix::errno::Errno::EEXIST) => {
                        let tmp = temp_name(dir, name);
                        link(&tmp).map_err(|e| anyhow!("cannot create {}: {e}", tmp.display()))?;
                        rename_or_remove(&tmp, path)
                    }
                    Err(e) => Err(anyhow!("cannot create {}: {e}", path.display())),
                }
            }
        }
    }

    /// Give up: an unnamed file goes with its descriptor, a named one is removed.
    fn discard(self) {
        if let Self::Named(f, tmp) = self {
            drop(f);
            // Best effort: the error that matters is the one returned.
            drop(fs::remove_file(tmp));
        }
    }
}

fn rename_or_remove(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path).map_err(|e| {
        drop(fs::remove_file(tmp));
        anyhow!("cannot rename {} to {}: {e}", tmp.display(), path.display())
    })
}

/// Create `path` with `bytes`, mode 0600, atomically (see the module's doc).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let (dir, name) = split(path)?;
    let mut tmp = Temp::create(&dir, &name).with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let written = tmp.file().write_all(bytes).and_then(|()| tmp.file().sync_all());
    if let Err(e) = written {
        tmp.discard();
        return Err(anyhow!("cannot write {}: {e}", path.display()));
    }
    tmp.publish(&dir, &name, path)
}

/// Prove, before a capture starts, that [`write_private`] can write `path` at its end: its
/// directory exists, a file can be made in it (not read-only, not denied) and the filesystem
/// takes one block (not full). Leaves nothing behind. The error is one line.
pub(crate) fn check_writable(path: &Path) -> Result<(), String> {
    let (dir, name) = split(path).map_err(|e| e.to_string())?;
    if !dir.is_dir() {
        return Err(format!("output directory {} does not exist", dir.display()));
    }
    if path.is_dir() {
        return Err(format!("output {} is a directory", path.display()));
    }
    let why = |e: &io::Error| {
        let text = e.to_string();
        text.split(" (os error").next().unwrap_or(&text).to_lowercase()
    };
    let mut tmp = Temp::create(&dir, &name).map_err(|e| format!("cannot write {}: {}", path.display(), why(&e)))?;
    let probe = tmp.file().write_all(&PROBE);
    tmp.discard();
    probe.map_err(|e| format!("cannot write {}: {}", path.display(), why(&e)))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pktloss-out-{tag}-{}", std::process::id()));
        drop(fs::remove_dir_all(&d));
        fs::create_dir_all(&d).expect("scratch dir");
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).expect("list").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    /// New and replaced files alike are 0600 with the bytes, and nothing else is left.
    #[test]
    fn writes_new_and_replaced_files_privately() {
        let d = scratch("write");
        let p = d.join("x.json");
        write_private(&p, b"one").expect("new");
        write_private(&p, b"two").expect("replace");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        assert_eq!(fs::metadata(&p).expect("stat").permissions().mode() & 0o777, 0o600);
        assert_eq!(entries(&d), ["x.json"]);
        check_writable(&p).expect("writable");
        assert_eq!(entries(&d), ["x.json"], "the check leaves nothing");
        drop(fs::remove_dir_all(&d));
    }

    #[test]
    fn unwritable_targets_are_one_line() {
        let d = scratch("bad");
        let e = check_writable(&d.join("nodir/x.json")).expect_err("missing dir");
        assert!(e.contains("does not exist"), "{e}");
        let e = check_writable(&d).expect_err("a directory");
        assert!(e.contains("is a directory"), "{e}");
        drop(fs::remove_dir_all(&d));
    }
}
