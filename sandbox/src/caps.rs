//! Capabilities: the workload keeps only what the plan's [`Capabilities`]
//! keep (nothing by default), and cannot regain more by executing a file
//! as uid 0.
//!
//! What is kept: the bounding set is cut down to `bounding`; `ambient` is
//! raised in the ambient set (so an unprivileged program, which has no file
//! capabilities, holds it in its permitted and effective sets after exec),
//! and is all that stays permitted and inheritable. The capabilities are
//! those of the sandbox's user namespace.

use protocol::{CapSet, Capabilities, Capability};

use crate::error::{Context, Error};
use crate::sys;

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// uid 0 inside the sandbox must not mean "all capabilities" at exec, and
/// nothing may change that later.
const BASE_SECUREBITS: libc::c_ulong =
    SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_KEEP_CAPS_LOCKED;
/// No capability can be raised into the ambient set any more.
const NO_AMBIENT_RAISE: libc::c_ulong =
    SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

/// Cuts every set down to `keep`. Needs CAP_SETPCAP (held in the sandbox's
/// user namespace until now), so the order is fixed: bounding set,
/// ambient raise, securebits, and the capset that gives CAP_SETPCAP up last.
pub fn apply(keep: &Capabilities) -> Result<(), Error> {
    let ambient = keep.ambient();
    sys::prctl(libc::PR_SET_SECUREBITS, BASE_SECUREBITS).step(|| "setting securebits".into())?;
    drop_bounding_except(keep.bounding())?;
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    )
    .step(|| "clearing ambient capabilities".into())?;
    if !ambient.is_empty() {
        // A capability can only be raised into the ambient set when it is
        // permitted and inheritable; CAP_SETPCAP stays effective for the
        // securebits below.
        let setpcap = CapSet::EMPTY.with(Capability::SETPCAP).bits();
        let held = ambient.bits() | setpcap;
        sys::capset_masks(held, held, ambient.bits())
            .step(|| "making the kept capabilities inheritable".into())?;
        for cap in ambient.iter() {
            sys::prctl2(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                libc::c_ulong::from(cap.number()),
            )
            .step(|| format!("raising ambient capability {cap}"))?;
        }
    }
    sys::prctl(libc::PR_SET_SECUREBITS, BASE_SECUREBITS | NO_AMBIENT_RAISE)
        .step(|| "locking the ambient set".into())?;
    let kept = ambient.bits();
    if kept == 0 {
        sys::capset_empty()
            .step(|| "clearing effective, permitted and inheritable capabilities".into())
    } else {
        sys::capset_masks(kept, kept, kept)
            .step(|| "dropping effective, permitted and inheritable capabilities".into())
    }
}

/// Drops every capability the kernel knows from the bounding set, except
/// those in `keep`.
fn drop_bounding_except(keep: CapSet) -> Result<(), Error> {
    for cap in 0..64u32 {
        match sys::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap)) {
            Ok(_) => {}
            // EINVAL: past the last capability this kernel knows.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(e).step(|| format!("reading bounding capability {cap}")),
        }
        if Capability::from_number(cap).is_some_and(|c| keep.contains(c)) {
            continue;
        }
        sys::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap))
            .step(|| format!("dropping bounding capability {cap}"))?;
    }
    Ok(())
}
