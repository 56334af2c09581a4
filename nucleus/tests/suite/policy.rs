//! Policy files: a capabilities policy, a Landlock policy and a seccomp
//! profile each change what the workload can do, as the probe sees it; a
//! pinned file whose SHA-256 differs, or a file with an error, stops
//! everything before anything is created.

use std::path::{Path, PathBuf};

use super::bad_input::refused;
use super::harness::{attempt, report, Identity, Nucleus, TempDir};

as_root_and_user!(
    caps_policy_keeps_net_bind_service,
    landlock_policy_denies_what_it_does_not_list,
    seccomp_profile_errno_is_the_profiles,
);

/// CAP_NET_BIND_SERVICE, bit 10, as /proc/self/status prints a set.
const NET_BIND_SERVICE: &str = "0000000000000400";
/// The errno the test profile gives mkdir: ENOMSG, which nothing else
/// would return for a mkdir.
const PROFILE_ERRNO: i32 = 42;

fn write(dir: &TempDir, name: &str, text: &str) -> (PathBuf, String) {
    let file = dir.write(name, text);
    let arg = file.to_str().unwrap().to_owned();
    (file, arg)
}

fn caps_policy_keeps_net_bind_service(id: &Identity) {
    let dir = TempDir::new("caps-policy");
    let (_, file) = write(
        &dir,
        "caps.toml",
        "[bounding]\nkeep = [\"CAP_NET_BIND_SERVICE\"]\n[ambient]\nkeep = [\"CAP_NET_BIND_SERVICE\"]\n",
    );
    let r = report(id, &["--caps-policy", &file]);
    // The workload, a program without file capabilities, holds it after
    // exec through the ambient set; nothing else is anywhere.
    for set in ["inh", "prm", "eff", "bnd", "amb"] {
        assert_eq!(
            r["caps"][set], NET_BIND_SERVICE,
            "cap set {set}: {}",
            r["caps"]
        );
    }
    assert_eq!(r["no_new_privs"], 1);

    // It is real: a non-root uid inside binds a privileged port with the
    // policy, and cannot without it.
    let bind = [
        "python3",
        "-c",
        "import socket; socket.socket().bind(('127.0.0.1', 80)); print('bound')",
    ];
    let out = Nucleus::bare(id)
        .args(["--userns", "keep-id", "--caps-policy", &file])
        .run(&bind);
    out.assert_code(0);
    assert_eq!(out.stdout, "bound\n", "{out}");
    let out = Nucleus::bare(id).args(["--userns", "keep-id"]).run(&bind);
    out.assert_code(1);
    assert!(out.stderr.contains("Permission denied"), "{out}");

    // Bounding only: in the bounding set, held nowhere.
    let (_, file) = write(
        &dir,
        "bounding.toml",
        "[bounding]\nkeep = [\"CAP_NET_BIND_SERVICE\"]\n",
    );
    let r = report(id, &["--caps-policy", &file]);
    assert_eq!(r["caps"]["bnd"], NET_BIND_SERVICE, "{}", r["caps"]);
    for set in ["inh", "prm", "eff", "amb"] {
        assert_eq!(
            r["caps"][set], "0000000000000000",
            "cap set {set}: {}",
            r["caps"]
        );
    }
}

fn landlock_policy_denies_what_it_does_not_list(id: &Identity) {
    let dir = TempDir::new("landlock-policy");
    // Only the probe may be read and executed, and /tmp read.
    let (_, file) = write(
        &dir,
        "landlock.toml",
        "[[rules]]\npath = \"/probe\"\naccess = [\"read\", \"execute\"]\n\n[[rules]]\npath = \"/tmp\"\naccess = [\"read\"]\n",
    );
    let flags = ["--landlock-policy", file.as_str()];
    let a = attempt(id, &flags, &["read", "/etc/passwd"]);
    assert_eq!((a.ok, a.errno), (false, Some(libc::EACCES)), "{a:?}");
    let a = attempt(id, &flags, &["write", "/tmp/x"]);
    assert_eq!((a.ok, a.errno), (false, Some(libc::EACCES)), "{a:?}");
    // The same attempts under the default policy succeed.
    assert!(attempt(id, &[], &["read", "/etc/passwd"]).ok);
    assert!(attempt(id, &[], &["write", "/tmp/x"]).ok);
}

fn seccomp_profile_errno_is_the_profiles(id: &Identity) {
    let dir = TempDir::new("seccomp-profile");
    let (_, file) = write(
        &dir,
        "profile.json",
        &format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW",
  "architectures": ["SCMP_ARCH_X86_64"],
  "syscalls": [{{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": {PROFILE_ERRNO}}}]}}"#
        ),
    );
    let a = attempt(id, &["--seccomp-profile", &file], &["mkdir", "/tmp/d"]);
    assert_eq!((a.ok, a.errno), (false, Some(PROFILE_ERRNO)), "{a:?}");
    // The profile replaced the default: what the default denies is allowed.
    let r = report(id, &["--seccomp-profile", &file]);
    assert_eq!(r["seccomp"], 2);
    assert!(attempt(id, &[], &["mkdir", "/tmp/d"]).ok);
}

fn sha256_hex(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn pinned_policy_runs_when_the_hash_matches() {
    let dir = TempDir::new("pin-match");
    let (path, file) = write(&dir, "caps.toml", "[bounding]\nkeep = []\n");
    let pin = sha256_hex(&path).to_ascii_uppercase();
    let out = Nucleus::bare(&Identity::invoker())
        .args(["--caps-policy", &file, "--caps-policy-sha256", &pin])
        .run(&["true"]);
    out.assert_code(0);
}

#[test]
fn pinned_policy_mismatch_starts_nothing() {
    let dir = TempDir::new("pin-mismatch");
    let out_dir = dir.mkdir("out");
    let (path, file) = write(
        &dir,
        "landlock.toml",
        "[[rules]]\npath = \"/\"\naccess = [\"read\"]\n",
    );
    let pin = "0".repeat(64);
    let mut volume = out_dir.as_os_str().to_owned();
    volume.push(":/out");
    let out = Nucleus::bare(&Identity::invoker())
        .arg("-v")
        .arg(volume)
        .args(["--landlock-policy", &file, "--landlock-policy-sha256", &pin])
        .run(&["/bin/sh", "-c", "echo ran > /out/marker"]);
    let line = out.assert_refused("--landlock-policy");
    assert!(line.contains("SHA-256 mismatch"), "{line}");
    assert!(line.contains(&pin), "{line}");
    assert!(line.contains(&sha256_hex(&path)), "{line}");
    assert!(!out_dir.join("marker").exists(), "the command ran");
}

#[test]
fn pin_without_its_file_is_refused() {
    refused(
        &["--seccomp-profile-sha256", &"a".repeat(64)],
        "--seccomp-profile",
    );
    refused(&["--caps-policy-sha256", "xyz"], "--caps-policy-sha256 xyz");
}

#[test]
fn bad_policy_files_name_file_line_column_and_field() {
    let dir = TempDir::new("bad-policy");
    for (flag, name, text, needle) in [
        (
            "--caps-policy",
            "caps.toml",
            "[bounding]\nkeep = [\"CAP_NET_BIND_SERVICE\"]\n[ambient]\nkeep = [\"CAP_SYS_ADMIN\"]\n",
            ":4:9: ambient.keep[0]: CAP_SYS_ADMIN is not kept in the bounding set",
        ),
        (
            "--caps-policy",
            "caps2.toml",
            "[bounding]\nkeep = [\"CAP_FLY\"]\n",
            ":2:9: bounding.keep[0]: unknown capability \"CAP_FLY\"",
        ),
        (
            "--landlock-policy",
            "landlock.toml",
            "min_abi = 1\n[[rules]]\npath = \"/\"\naccess = [\"read\", \"teleport\"]\n",
            ":4:19: rules[0].access[1]: unknown variant `teleport`",
        ),
        (
            "--landlock-policy",
            "landlock2.toml",
            "min_abi = 0\n",
            ":1:11: min_abi: Landlock ABI 0 does not exist",
        ),
        (
            "--seccomp-profile",
            "profile.json",
            "{\"defaultAction\": \"SCMP_ACT_ALLOW\",\n \"syscall\": []}",
            ":2:10: syscall: unknown field `syscall`",
        ),
    ] {
        let (_, file) = write(&dir, name, text);
        let line = refused(&[flag, &file], &format!("{flag} {file}{needle}"));
        assert!(!line.contains('\n'), "{line}");
    }
}
