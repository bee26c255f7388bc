//! Small helpers of the benchmarks: paths, running commands, root checks (shared with xtask
//! through [`pktloss_testkit::workspace`]), and finding a program on PATH.
use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
};

pub(crate) use pktloss_testkit::workspace::{
    cargo, cargo_build, is_root, output, pktloss_bin, run, show, succeeds, target_dir, workspace_root,
};

/// Find an executable by name in PATH (or return the path if it contains a slash and exists).
pub(crate) fn which(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    let name = name.as_ref();
    let p = Path::new(name);
    if p.components().count() > 1 {
        return is_executable(p).then(|| p.to_path_buf());
    }
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|d| d.join(name)).find(|c| is_executable(c))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
