//! User-namespace id maps, written by the parent for the child.

use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};

use protocol::{IdMap, IdMapping};

use crate::error::{Context, Error};
use crate::sys;

/// The text the kernel expects in `uid_map`/`gid_map`.
pub fn map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside(), m.outside(), m.count()))
        .collect()
}

/// Writes the maps of process `pid` under `proc_root` (normally `/proc`).
/// setgroups is denied first: the kernel requires it before an unprivileged
/// gid map, and the workload never needs to change its groups; only a plan
/// with supplementary groups (mapped by root or newgidmap) leaves it to the
/// sandbox's setup, which sets them once, before it drops every capability.
pub fn write(proc_root: &Path, pid: libc::pid_t, ids: &IdMapping) -> Result<(), Error> {
    let dir = proc_root.join(pid.to_string());
    let unprivileged_ranges =
        sys::geteuid() != 0 && (ids.uid_map.len() > 1 || ids.gid_map.len() > 1);
    let write = |file: &str, text: &str| -> Result<(), Error> {
        fs::write(dir.join(file), text).step(|| format!("writing {file} of the sandbox"))
    };
    let setgroups = if ids.groups.is_empty() {
        fs::write(dir.join("setgroups"), "deny")
    } else {
        Ok(())
    };
    match setgroups {
        Ok(()) => {}
        // Older kernels have no setgroups file: nothing to deny there.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).step(|| "writing setgroups of the sandbox".into()),
    }
    if unprivileged_ranges {
        return write_with_tools(pid, ids);
    }
    write("uid_map", &map_text(&ids.uid_map))?;
    write("gid_map", &map_text(&ids.gid_map))
}

/// An unprivileged process may map only its own ids; subordinate ranges
/// take shadow's setuid newuidmap and newgidmap, which check them against
/// /etc/subuid and /etc/subgid themselves.
fn write_with_tools(pid: libc::pid_t, ids: &IdMapping) -> Result<(), Error> {
    for (tool, maps) in [("newuidmap", &ids.uid_map), ("newgidmap", &ids.gid_map)] {
        let mut cmd = Command::new(tool);
        cmd.arg(pid.to_string());
        for m in maps {
            cmd.args([m.inside(), m.outside(), m.count()].map(|n| n.to_string()));
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Setup {
                step: format!(
                    "running {tool} for the subordinate id ranges (Debian package uidmap)"
                ),
                source: e,
            })?;
        if !out.status.success() {
            return Err(Error::Child(format!(
                "{tool} refused the subordinate id ranges: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_text_is_one_line_per_range() {
        let maps = [
            IdMap::new(0, 1000, 1).unwrap(),
            IdMap::new(1, 100000, 65536).unwrap(),
        ];
        assert_eq!(map_text(&maps), "0 1000 1\n1 100000 65536\n");
    }

    #[test]
    fn writes_setgroups_before_maps() {
        let dir = std::env::temp_dir().join(format!("nucleus-idmap-{}", std::process::id()));
        let proc_dir = dir.join("42");
        fs::create_dir_all(&proc_dir).unwrap();
        let ids = IdMapping {
            uid_map: vec![IdMap::new(0, 1000, 1).unwrap()],
            gid_map: vec![IdMap::new(0, 100, 1).unwrap()],
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        };
        write(&dir, 42, &ids).unwrap();
        assert_eq!(
            fs::read_to_string(proc_dir.join("setgroups")).unwrap(),
            "deny"
        );
        assert_eq!(
            fs::read_to_string(proc_dir.join("uid_map")).unwrap(),
            "0 1000 1\n"
        );
        assert_eq!(
            fs::read_to_string(proc_dir.join("gid_map")).unwrap(),
            "0 100 1\n"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
