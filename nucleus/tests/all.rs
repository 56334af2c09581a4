//! Host integration tests of `nucleus run`: the real binary, with the
//! static probe (`NUCLEUS_PROBE`) inside reporting what the sandbox looks
//! like and trying to get out. Security tests run twice, as root and as
//! the unprivileged `NUCLEUS_TEST_USER`.
//!
//! Run as root, in a private mount namespace whose /sys/fs/cgroup mounts
//! are bind-remounted read-only (tests/run-all does this):
//! `NUCLEUS_PROBE=... NUCLEUS_REQUIRE_ALL=1 cargo test -p nucleus --test all`.

#[cfg(test)]
mod suite;
