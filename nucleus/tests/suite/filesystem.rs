//! Volumes and `--rootfs`: writes land where they should, as whom they
//! should, and nowhere else.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

use super::harness::{fixture, give, Attempt, Identity, Nucleus, TempDir, PROBE};

as_root_and_user!(
    rw_volume_writes_land_on_the_host_as_the_caller,
    ro_volume_refuses_writes,
    volume_symlinks_do_not_reach_host_files,
    rootfs_runs_with_only_the_probe,
    rootfs_is_writable_by_default,
    rootfs_read_only_refuses_writes,
);

/// `try ARGS` with `-v HOST:TARGET[:MODE]`.
fn with_volume(id: &Identity, volume: &str, args: &[&str]) -> Attempt {
    super::harness::attempt(id, &["-v", volume], args)
}

fn rw_volume_writes_land_on_the_host_as_the_caller(id: &Identity) {
    let dir = TempDir::new("vol-rw");
    let vol = dir.mkdir("data");
    give(&vol, id);
    let a = with_volume(
        id,
        &format!("{}:/data", vol.display()),
        &["write", "/data/f"],
    );
    assert!(a.ok, "{a:?}");
    let file = vol.join("f");
    assert_written_by(&file, id);
}

fn ro_volume_refuses_writes(id: &Identity) {
    let dir = TempDir::new("vol-ro");
    let vol = dir.mkdir("data");
    give(&vol, id);
    let a = with_volume(
        id,
        &format!("{}:/data:ro", vol.display()),
        &["write", "/data/f"],
    );
    assert_eq!((a.ok, a.errno), (false, Some(libc::EROFS)), "{a:?}");
    assert!(!vol.join("f").exists());
}

/// An absolute and a relative symlink in a volume, both aimed at a file in
/// a host directory the sandbox cannot see: inside they resolve in the
/// sandbox's own tree, where there is nothing.
fn volume_symlinks_do_not_reach_host_files(id: &Identity) {
    let dir = TempDir::new("vol-symlink");
    let secret_dir = dir.mkdir("secret");
    fs::set_permissions(&secret_dir, fs::Permissions::from_mode(0o700)).unwrap();
    let secret = dir.write("secret/file", "host secret");
    let vol = dir.mkdir("vol");
    symlink(&secret, vol.join("abs")).unwrap();
    symlink("../secret/file", vol.join("rel")).unwrap();
    dir.chown_all(id);
    let volume = format!("{}:/data", vol.display());
    for link in ["/data/abs", "/data/rel"] {
        for op in ["read", "write"] {
            let a = with_volume(id, &volume, &[op, link]);
            assert_eq!(
                (a.ok, a.errno),
                (false, Some(libc::ENOENT)),
                "{op} {link}: {a:?}"
            );
        }
    }
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host secret");
}

/// A root holding nothing but the probe and empty mount points, owned by
/// `id`.
fn minimal_rootfs(id: &Identity) -> TempDir {
    let dir = TempDir::new("rootfs");
    for d in ["probe", "proc", "dev", "sys", "tmp"] {
        dir.mkdir(d);
    }
    let probe = dir.join(PROBE.trim_start_matches('/'));
    fs::copy(fixture().probe_dir().join("nucleus-probe"), &probe).unwrap();
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).unwrap();
    dir.chown_all(id);
    dir
}

fn in_rootfs(id: &Identity, root: &Path, flags: &[&str], args: &[&str]) -> Attempt {
    let mut probe_args = vec!["try"];
    probe_args.extend_from_slice(args);
    let out = Nucleus::bare(id)
        .arg("--rootfs")
        .arg(root)
        .args(flags)
        .probe(&probe_args);
    out.assert_code(0);
    let v = out.json();
    Attempt {
        ok: v["ok"].as_bool().unwrap_or_else(|| panic!("{out}")),
        errno: v["errno"].as_i64().and_then(|e| i32::try_from(e).ok()),
        detail: v["detail"].as_str().unwrap_or_default().to_owned(),
    }
}

fn rootfs_runs_with_only_the_probe(id: &Identity) {
    let root = minimal_rootfs(id);
    let out = Nucleus::bare(id)
        .arg("--rootfs")
        .arg(root.path())
        .probe(&["report"]);
    out.assert_code(0);
    let r = out.json();
    assert_eq!(r["pid"], 1);
    assert_eq!(r["open_fds"], serde_json::json!([0, 1, 2]));
    let usr = in_rootfs(id, root.path(), &[], &["exists", "/usr"]);
    assert_eq!((usr.ok, usr.errno), (false, Some(libc::ENOENT)), "{usr:?}");
}

fn rootfs_is_writable_by_default(id: &Identity) {
    let root = minimal_rootfs(id);
    let a = in_rootfs(id, root.path(), &[], &["write", "/x"]);
    assert!(a.ok, "{a:?}");
    let file = root.join("x");
    assert_written_by(&file, id);
}

fn rootfs_read_only_refuses_writes(id: &Identity) {
    let root = minimal_rootfs(id);
    let a = in_rootfs(id, root.path(), &["--read-only"], &["write", "/x"]);
    assert_eq!((a.ok, a.errno), (false, Some(libc::EROFS)), "{a:?}");
    assert!(!root.join("x").exists());
}

/// `file` holds the probe's "x" and belongs to `id` on the host.
fn assert_written_by(file: &Path, id: &Identity) {
    assert_eq!(fs::read_to_string(file).unwrap(), "x");
    let meta = fs::metadata(file).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (id.uid, id.gid),
        "owner on the host"
    );
}
