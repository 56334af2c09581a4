//! `--user U --group G --additional-group G2`: the identity the workload
//! runs as inside the sandbox, by name (from the root's /etc/passwd and
//! /etc/group: the host's for the default root, the given root's with
//! `--rootfs`) or number. The sandbox takes it before it mounts anything,
//! so its writable paths and secrets belong to it.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use protocol::{IdMap, IdMapping};

use crate::cli::RunSpec;
use crate::compile::Caller;

/// Sets `ids`' workload identity from the flags; ids must be mapped.
pub fn apply(spec: &RunSpec, caller: Caller, ids: &mut IdMapping) -> Result<()> {
    if spec.user.is_none() && spec.group.is_none() && spec.groups.is_empty() {
        return Ok(());
    }
    let etc = spec
        .rootfs
        .as_ref()
        .map_or_else(|| PathBuf::from("/etc"), |root| root.join("etc"));
    // A root without the files takes numbers only.
    let read = |file: &str| std::fs::read_to_string(etc.join(file)).unwrap_or_default();
    let (passwd, group) = (read("passwd"), read("group"));
    if let Some(user) = &spec.user {
        let (uid, primary) = lookup(&passwd, user, 2).with_context(|| format!("--user {user}"))?;
        ids.uid = uid;
        if let Some(gid) = primary {
            ids.gid = gid;
        }
        mapped(&ids.uid_map, ids.uid, "--user", user)?;
    }
    if let Some(g) = &spec.group {
        ids.gid = lookup(&group, g, 2)
            .with_context(|| format!("--group {g}"))?
            .0;
    }
    mapped(&ids.gid_map, ids.gid, "--group", &ids.gid.to_string())?;
    for g in &spec.groups {
        let gid = lookup(&group, g, 2)
            .with_context(|| format!("--additional-group {g}"))?
            .0;
        mapped(&ids.gid_map, gid, "--additional-group", g)?;
        if !ids.groups.contains(&gid) {
            ids.groups.push(gid);
        }
    }
    if !ids.groups.is_empty() && caller.uid != 0 && ids.gid_map.len() == 1 {
        bail!("--additional-group: a sandbox with only your own gid mapped cannot set groups (the kernel denies it); add --userns subids");
    }
    Ok(())
}

/// `name_or_number`'s id (field 2 of a passwd/group line) and, for
/// passwd, its primary group (field 3).
fn lookup(table: &str, name_or_number: &str, id_field: usize) -> Result<(u32, Option<u32>)> {
    let entry = table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name_or_number) || fields.get(id_field) == Some(&name_or_number))
            .then_some(fields)
    });
    match (entry, name_or_number.parse::<u32>()) {
        (Some(fields), _) => {
            let id = fields.get(id_field).and_then(|f| f.parse().ok());
            let primary = fields.get(id_field + 1).and_then(|f| f.parse().ok());
            match id {
                Some(id) => Ok((id, primary)),
                None => bail!("its entry has no numeric id"),
            }
        }
        (None, Ok(id)) => Ok((id, None)),
        (None, Err(_)) => {
            bail!("no such name in the root's /etc/passwd or /etc/group; give a number")
        }
    }
}

fn mapped(map: &[IdMap], id: u32, flag: &str, given: &str) -> Result<()> {
    if map.iter().any(|m| m.contains_inside(id)) {
        Ok(())
    } else {
        bail!("{flag} {given}: id {id} is not mapped in the sandbox; add --userns subids (ids 1 and up are your /etc/subuid and /etc/subgid ranges)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\ndaemon:x:1:\nusers:x:100:alice\n";

    #[test]
    fn names_and_numbers_resolve() {
        assert_eq!(lookup(PASSWD, "alice", 2).unwrap(), (1000, Some(1000)));
        assert_eq!(lookup(PASSWD, "1", 2).unwrap(), (1, Some(1)));
        assert_eq!(lookup(PASSWD, "4242", 2).unwrap(), (4242, None));
        assert_eq!(lookup(GROUP, "users", 2).unwrap().0, 100);
        let err = lookup(PASSWD, "mallory", 2).unwrap_err().to_string();
        assert!(err.contains("no such name"), "{err}");
    }
}
