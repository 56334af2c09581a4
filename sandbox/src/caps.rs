//! Capabilities: the workload keeps none, in any set, and cannot regain
//! them by executing a file as uid 0.

use crate::error::{Context, Error};
use crate::sys;

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// Empties the bounding, ambient, inheritable, permitted and effective sets.
/// Needs CAP_SETPCAP (held in the sandbox's user namespace until now), so
/// the bounding set and securebits go first and capset last.
pub fn drop_all() -> Result<(), Error> {
    // uid 0 inside the sandbox must not mean "all capabilities" at exec.
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    sys::prctl(libc::PR_SET_SECUREBITS, bits).step(|| "setting securebits".into())?;
    for cap in 0..64 {
        match sys::prctl(libc::PR_CAPBSET_READ, cap) {
            Ok(_) => {}
            // EINVAL: past the last capability this kernel knows.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(e).step(|| format!("reading bounding capability {cap}")),
        }
        sys::prctl(libc::PR_CAPBSET_DROP, cap)
            .step(|| format!("dropping bounding capability {cap}"))?;
    }
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    )
    .step(|| "clearing ambient capabilities".into())?;
    sys::capset_empty().step(|| "clearing effective, permitted and inheritable capabilities".into())
}
