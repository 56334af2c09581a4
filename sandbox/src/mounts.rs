//! Deciding the mount table: a pure function from a plan to the ordered
//! list of mount steps that `rootfs` applies. Tests compare exact lists.

use protocol::{
    AbsPath, ContextMode, Mount, OverlayUpper, Plan, RootFs, RootSource, Secret, Sha256,
    WorkspaceMode, CONTEXT_DIR, WORKSPACE_DIR,
};

/// Device nodes bound from the host into the sandbox's fresh `/dev`: the
/// harmless ones every program expects, nothing that reaches hardware.
pub const DEV_NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// Kernel interfaces hidden entirely (a file gets `/dev/null` bound over it,
/// a directory an empty read-only tmpfs): they leak host state or allow
/// denial of service. The list follows the OCI runtime defaults.
pub const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Kernel interfaces kept visible but read-only: writing them changes the
/// host (sysctls, IRQ affinity, the magic SysRq key).
pub const READ_ONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const TMP_SIZE: u64 = 256 * 1024 * 1024;
const SHM_SIZE: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Recursive bind of a host path; always nosuid,nodev.
    Bind {
        source: AbsPath,
        target: AbsPath,
        read_only: bool,
    },
    Tmpfs {
        target: AbsPath,
        size_bytes: u64,
        mode: u32,
        noexec: bool,
    },
    Symlink {
        target: AbsPath,
        link_to: String,
    },
    /// A copy of a small host file, created in the root.
    CopyFile {
        source: AbsPath,
        target: AbsPath,
    },
    /// A small file with the plan's text, created in the root.
    File {
        target: AbsPath,
        text: String,
    },
    /// An overlay with the host directory `lower` below, writes to storage.
    Overlay {
        lower: AbsPath,
        target: AbsPath,
    },
    /// A fresh procfs for the sandbox's pid namespace.
    /// hide_pids: only the workload's own uid's processes are visible.
    Proc {
        hide_pids: bool,
    },
    /// sysfs of the sandbox's network namespace, read-only.
    Sysfs,
    /// A private devpts instance (its own pty numbering).
    Devpts,
    /// Bind one of [`DEV_NODES`] from the host's `/dev` (nosuid, noexec).
    DevNode(&'static str),
    /// Hide a path: `/dev/null` over a file, an empty read-only tmpfs over a directory.
    Mask(AbsPath),
    /// Bind a path onto itself, read-only, recursively.
    ReadOnly(AbsPath),
    /// Make one mount read-only (not its children), e.g. `/dev` once populated.
    SealMount(AbsPath),
    /// A tmpfs at `target` filled with a copy of the host tree `source`.
    /// `flag` names the option in errors; `verify` is the manifest digest
    /// the copy must have; `export` hands the copy's directory to the
    /// parent (workspace copy-in-out syncs it back after exit).
    CopyTree {
        source: AbsPath,
        target: AbsPath,
        flag: &'static str,
        verify: Option<Sha256>,
        export: bool,
        read_only: bool,
    },
    /// A tmpfs at `/run/secrets` holding each secret, mode 0400, owned by
    /// the workload's uid and gid; contents come from the executor's inputs.
    Secrets {
        secrets: Vec<Secret>,
        uid: u32,
        gid: u32,
    },
    /// Make the root mount read-only, after every mount point exists.
    SealRoot,
}

fn path(s: &str) -> AbsPath {
    // Only called with the literal paths of this module, all absolute and
    // normal; an error would be a bug caught by the tests below.
    AbsPath::try_from(s).unwrap_or_else(|_| AbsPath::root())
}

/// The mount steps for `plan`, in the order they must be applied on top of
/// its root: `/tmp`, the plan's own mounts, then the kernel filesystems (so
/// no plan mount can land on top of them), then masks, then sealing.
pub fn steps(plan: &Plan) -> Vec<Step> {
    let mut steps = Vec::new();
    let tmp = path("/tmp");
    if !plan.mounts.iter().any(|m| m.target() == &tmp) {
        steps.push(Step::Tmpfs {
            target: tmp,
            size_bytes: TMP_SIZE,
            mode: 0o1777,
            noexec: false,
        });
    }
    steps.extend(plan.mounts.iter().map(|m| match m {
        Mount::Bind {
            source,
            target,
            read_only,
        } => Step::Bind {
            source: source.clone(),
            target: target.clone(),
            read_only: *read_only,
        },
        Mount::Tmpfs { target, size_bytes } => Step::Tmpfs {
            target: target.clone(),
            size_bytes: *size_bytes,
            mode: 0o755,
            noexec: false,
        },
        Mount::Symlink { target, link_to } => Step::Symlink {
            target: target.clone(),
            link_to: link_to.as_str().to_owned(),
        },
        Mount::CopyFile { source, target } => Step::CopyFile {
            source: source.clone(),
            target: target.clone(),
        },
        Mount::Overlay { lower, target } => Step::Overlay {
            lower: lower.clone(),
            target: target.clone(),
        },
        Mount::File { target, text } => Step::File {
            target: target.clone(),
            text: text.as_str().to_owned(),
        },
    }));
    steps.extend(agent_steps(plan));
    steps.push(Step::Proc {
        hide_pids: plan.hardening.hide_pids,
    });
    steps.extend(dev_steps());
    // sysfs can be mounted only by the owner of the network namespace: in
    // the host's, the sandbox has no /sys.
    if plan.network != protocol::NetworkMode::Host {
        steps.push(Step::Sysfs);
    }
    steps.extend(MASKED.iter().map(|p| Step::Mask(path(p))));
    steps.extend(READ_ONLY.iter().map(|p| Step::ReadOnly(path(p))));
    steps.push(Step::SealMount(path("/dev")));
    if plan.root.read_only && plan.root.overlay.is_none() {
        steps.push(Step::SealRoot);
    }
    steps
}

fn agent_steps(plan: &Plan) -> Vec<Step> {
    let mut steps = Vec::new();
    if let Some(ctx) = &plan.context {
        let target = path(CONTEXT_DIR);
        steps.push(match ctx.mode {
            ContextMode::Copy => Step::CopyTree {
                source: ctx.source.clone(),
                target,
                flag: "--context",
                verify: ctx.verify,
                export: false,
                read_only: true,
            },
            ContextMode::Bind => Step::Bind {
                source: ctx.source.clone(),
                target,
                read_only: true,
            },
        });
    }
    if let Some(ws) = &plan.workspace {
        let target = path(WORKSPACE_DIR);
        steps.push(match ws.mode {
            WorkspaceMode::CopyInOut { .. } => Step::CopyTree {
                source: ws.source.clone(),
                target,
                flag: "--workspace",
                verify: None,
                export: true,
                read_only: false,
            },
            WorkspaceMode::BindRw | WorkspaceMode::BindRo => Step::Bind {
                source: ws.source.clone(),
                target,
                read_only: ws.mode == WorkspaceMode::BindRo,
            },
        });
    }
    if !plan.secrets.is_empty() {
        steps.push(Step::Secrets {
            secrets: plan.secrets.clone(),
            uid: plan.ids.uid,
            gid: plan.ids.gid,
        });
    }
    steps
}

fn dev_steps() -> Vec<Step> {
    let mut steps = vec![Step::Tmpfs {
        target: path("/dev"),
        size_bytes: 64 * 1024,
        mode: 0o755,
        noexec: true,
    }];
    steps.extend(DEV_NODES.iter().map(|n| Step::DevNode(n)));
    steps.push(Step::Devpts);
    steps.push(Step::Tmpfs {
        target: path("/dev/shm"),
        size_bytes: SHM_SIZE,
        mode: 0o1777,
        noexec: true,
    });
    for (link, to) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        steps.push(Step::Symlink {
            target: path(link),
            link_to: to.to_owned(),
        });
    }
    steps
}

/// Host paths the root and the steps bind from, each to be opened before
/// the staging mount can shadow it.
pub fn host_sources(root: &RootFs, steps: &[Step]) -> Vec<AbsPath> {
    let root_dir = match &root.source {
        RootSource::Directory(dir) => Some(dir.clone()),
        RootSource::Tmpfs => None,
    };
    let storage = match &root.overlay {
        Some(OverlayUpper::Directory(dir)) => Some(dir.clone()),
        _ => None,
    };
    root_dir
        .into_iter()
        .chain(storage)
        .chain(steps.iter().filter_map(|s| match s {
            Step::Bind { source, .. }
            | Step::CopyTree { source, .. }
            | Step::CopyFile { source, .. }
            | Step::Overlay { lower: source, .. } => Some(source.clone()),
            Step::DevNode(node) => Some(path(&format!("/dev/{node}"))),
            _ => None,
        }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_paths_are_valid() {
        for p in MASKED.iter().chain(READ_ONLY.iter()) {
            assert!(AbsPath::try_from(*p).is_ok(), "{p}");
        }
        for s in dev_steps() {
            if let Step::Symlink { target, .. } | Step::Bind { target, .. } = s {
                assert!(!target.is_root());
            }
        }
    }

    #[test]
    fn order_is_tmp_user_kernel_masks_seal() {
        let usr = AbsPath::try_from("/usr").unwrap();
        let steps = steps_for(vec![Mount::Bind {
            source: usr.clone(),
            target: usr.clone(),
            read_only: true,
        }]);
        assert!(
            matches!(&steps[0], Step::Tmpfs { target, mode: 0o1777, .. } if target.as_str() == "/tmp")
        );
        assert_eq!(
            steps[1],
            Step::Bind {
                source: usr.clone(),
                target: usr,
                read_only: true
            }
        );
        assert_eq!(steps[2], Step::Proc { hide_pids: false });
        assert_eq!(steps.last(), Some(&Step::SealRoot));
        let proc_at = steps
            .iter()
            .position(|s| *s == Step::Proc { hide_pids: false })
            .unwrap();
        let first_mask = steps
            .iter()
            .position(|s| matches!(s, Step::Mask(_)))
            .unwrap();
        assert!(proc_at < first_mask);
    }

    #[test]
    fn a_tmp_mount_replaces_the_default_tmp() {
        let tmp = AbsPath::try_from("/tmp").unwrap();
        let steps = steps_for(vec![Mount::Tmpfs {
            target: tmp.clone(),
            size_bytes: 1,
        }]);
        let tmp_mounts = steps
            .iter()
            .filter(|s| matches!(s, Step::Tmpfs { target, .. } if *target == tmp))
            .count();
        assert_eq!(tmp_mounts, 1);
    }

    #[test]
    fn host_sources_include_root_dir_and_dev_nodes() {
        let mut plan = protocol::testing::sample_plan();
        plan.root.source = RootSource::Directory(AbsPath::try_from("/srv/root").unwrap());
        let sources = host_sources(&plan.root, &steps(&plan));
        assert_eq!(sources[0].as_str(), "/srv/root");
        assert!(sources.iter().any(|s| s.as_str() == "/dev/null"));
    }

    fn steps_for(mounts: Vec<Mount>) -> Vec<Step> {
        let mut plan = protocol::testing::sample_plan();
        plan.mounts = mounts;
        plan.root.read_only = true;
        steps(&plan)
    }
}
