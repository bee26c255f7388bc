//! netdevsim for a guest kernel, built out of tree: Debian's kernels do not build it, and it is
//! the one driver that reports devlink traps on demand (the hardware-trap test).
//!
//! From the kernel's own `linux-headers-RELEASE` (with its `-common` and `linux-kbuild`) and
//! the `drivers/net/netdevsim` directory of the `linux-source` of the same package version,
//! unpacked and built with the host's gcc (Debian 12's, the one that built the 6.1 kernel).
//! The module lands in `<cache>/netdevsim/RELEASE/netdevsim.ko`, where the tests look for it
//! (`~/.cache/pktloss/netdevsim/$(uname -r)/` in the guest, which sees the host's root); a
//! second run finds it there and downloads nothing.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::util::run;

/// The Debian packages the build needs, all of the kernel package's `version` (`6.1.192-3`).
pub(crate) fn packages(release: &str, version: &str) -> Result<Vec<String>> {
    // `6.1.0-57-amd64` -> abi `6.1.0-57`, series `6.1`.
    let (abi, _flavour) = release.rsplit_once('-').context("a release of the form ABI-FLAVOUR")?;
    let series: String = abi.split('.').take(2).collect::<Vec<_>>().join(".");
    Ok(vec![
        format!("linux-headers-{release}={version}"),
        format!("linux-headers-{abi}-common={version}"),
        format!("linux-kbuild-{series}={version}"),
        format!("linux-source-{series}={version}"),
    ])
}

/// The cached module of `release`, built when missing. `download(dir)` fetches the
/// [`packages`] into `dir`.
pub(crate) fn ensure(cache: &Path, release: &str, download: &dyn Fn(&Path) -> Result<()>) -> Result<PathBuf> {
    let dir = cache.join("netdevsim").join(release);
    let ko = dir.join("netdevsim.ko");
    if ko.is_file() {
        eprintln!("ok: netdevsim for {release} cached in {}", ko.display());
        return Ok(ko);
    }
    let work = cache.join("netdevsim").join(format!("{release}.build"));
    drop(fs::remove_dir_all(&work));
    let debs = work.join("debs");
    fs::create_dir_all(&debs).with_context(|| format!("cannot create {}", debs.display()))?;
    let (abi, _flavour) = release.rsplit_once('-').context("a release of the form ABI-FLAVOUR")?;
    let series: String = abi.split('.').take(2).collect::<Vec<_>>().join(".");
    eprintln!("building netdevsim for {release} out of tree...");
    download(&debs)?;
    let root = work.join("root");
    for deb in fs::read_dir(&debs)?.filter_map(std::result::Result::ok).map(|e| e.path()) {
        if deb.extension().is_some_and(|x| x == "deb") {
            run(Command::new("dpkg").arg("-x").arg(&deb).arg(&root))?;
        }
    }
    let headers = root.join("usr/src").join(format!("linux-headers-{release}"));
    // Its Makefile includes the -common tree by absolute path: point it at ours.
    let makefile = headers.join("Makefile");
    let text = fs::read_to_string(&makefile).with_context(|| format!("cannot read {}", makefile.display()))?;
    let common = root.join("usr/src").join(format!("linux-headers-{abi}-common"));
    fs::write(&makefile, text.replace(&format!("/usr/src/linux-headers-{abi}-common"), &common.to_string_lossy()))?;
    let tarball = root.join("usr/src").join(format!("linux-source-{series}.tar.xz"));
    let src = work.join("src");
    fs::create_dir_all(&src)?;
    let inner = format!("linux-source-{series}/drivers/net/netdevsim");
    run(Command::new("tar").arg("-xJf").arg(&tarball).arg("-C").arg(&src).arg(&inner))?;
    let m = src.join(&inner);
    run(Command::new("make")
        .arg("-C")
        .arg(&headers)
        .arg(format!("M={}", m.display()))
        .arg("CONFIG_NETDEVSIM=m")
        .arg("modules"))?;
    let built = m.join("netdevsim.ko");
    if !built.is_file() {
        bail!("make left no {}", built.display());
    }
    fs::create_dir_all(&dir)?;
    fs::copy(&built, &ko)?;
    fs::remove_dir_all(&work)?;
    eprintln!("did: netdevsim for {release} in {}", ko.display());
    Ok(ko)
}
