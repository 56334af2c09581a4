//! Agent inputs: a context copied (or bound) read-only at /context and
//! verified against its manifest, a workspace at /workspace (bound, or a
//! copy synced back on exit without ever following a symlink on the host),
//! overlay roots, secrets at /run/secrets, and the refusal of bad agent
//! input with exit 125 and one line naming the flag.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libc::EROFS;

use super::harness::{attempt, Attempt, Identity, Nucleus, TempDir, Who};

as_root_and_user!(
    context_copy_has_the_same_files_and_modes,
    context_copy_is_read_only,
    context_copy_is_a_tmpfs_snapshot,
    context_bind_has_the_same_files_and_modes,
    context_bind_is_read_only,
    context_bind_sees_later_host_changes,
    verified_context_runs_when_unchanged,
    verified_context_refuses_a_changed_file,
    verified_context_refuses_an_added_file,
    verified_context_refuses_a_mode_change,
    workspace_bind_rw_writes_land_on_the_host_as_the_caller,
    workspace_bind_ro_refuses_writes,
    workspace_copy_syncs_new_modified_and_deleted_files,
    workspace_copy_syncs_after_a_failing_command,
    workspace_copy_keeps_a_symlink_made_inside_as_a_symlink,
    workspace_copy_replaces_a_host_symlink_instead_of_following_it,
    workspace_copy_is_not_synced_after_a_timeout,
    workspace_copy_is_synced_after_a_timeout_on_request,
    overlay_writes_vanish_with_the_sandbox,
    overlay_dir_keeps_the_writes,
    secret_is_readable_mode_0400_owned_by_uid_0,
    secret_is_owned_by_the_caller_with_keep_id,
    secrets_dir_is_read_only,
    secret_is_not_in_the_environment_or_the_output,
    secret_looking_env_prints_a_hint,
    refuses_a_context_that_is_a_file,
    refuses_a_missing_context,
    refuses_a_workspace_that_is_a_file,
    refuses_a_secret_that_is_a_directory,
    refuses_a_secret_that_is_a_device,
    refuses_a_secret_outside_run_secrets,
    refuses_a_secret_name_with_a_slash,
    refuses_overlay_dir_on_procfs,
    refuses_verifying_a_bound_context,
    refuses_sync_on_timeout_without_copy_in_out,
    refuses_a_context_that_is_a_fifo,
    refuses_a_workspace_that_is_a_fifo,
    refuses_a_secret_that_is_a_fifo,
);

// ---------------------------------------------------------------- helpers

fn text(p: &Path) -> String {
    p.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", p.display()))
        .to_owned()
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `try ARGS` with `flags`.
fn try_with(id: &Identity, flags: &[String], args: &[&str]) -> Attempt {
    attempt(id, &strs(flags), args)
}

fn assert_erofs(id: &Identity, flags: &[String], args: &[&str]) {
    let a = try_with(id, flags, args);
    assert_eq!(
        (a.ok, a.errno),
        (false, Some(EROFS)),
        "as {}: try {args:?} (flags {flags:?}): {a:?}",
        id.name
    );
}

/// `nucleus run FLAGS -- /bin/sh -c SCRIPT`; returns (exit code, stdout,
/// stderr).
fn sh(id: &Identity, flags: &[String], script: &str) -> (Option<i32>, String, String) {
    let out = Nucleus::new(id).args(flags).run(&["/bin/sh", "-c", script]);
    (out.code(), out.stdout, out.stderr)
}

/// Like [`sh`]; the script must succeed and nucleus print nothing.
fn sh_ok(id: &Identity, flags: &[String], script: &str) -> String {
    let (code, stdout, stderr) = sh(id, flags, script);
    assert_eq!(
        (code, stderr.as_str()),
        (Some(0), ""),
        "as {}: {flags:?} sh -c {script:?}\nstdout: {stdout}",
        id.name
    );
    stdout
}

/// Every entry under `root`, sorted: path, kind, mode, owner and the
/// content of a file or target of a link. Two equal listings are the same
/// tree as far as these tests care.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    list_into(root, root, &mut out);
    out.sort();
    out
}

fn list_into(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        let meta = fs::symlink_metadata(&path).unwrap();
        let ft = meta.file_type();
        let what = if ft.is_symlink() {
            format!("-> {}", fs::read_link(&path).unwrap().display())
        } else if ft.is_dir() {
            "dir".to_owned()
        } else if ft.is_file() {
            match fs::read(&path) {
                Ok(bytes) => format!("{:?}", String::from_utf8_lossy(&bytes)),
                Err(e) => format!("unreadable ({e})"),
            }
        } else {
            "other".to_owned()
        };
        out.push(format!(
            "{rel} {:04o} {}:{} {what}",
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid()
        ));
        if ft.is_dir() {
            list_into(root, &path, out);
        }
    }
}

// ---------------------------------------------------------------- context

/// What the context tree holds: path, `try exists` line inside (copied
/// and bound trees alike show the caller as uid 0), content.
const CONTEXT: [(&str, &str, Option<&str>); 6] = [
    ("readme", "file mode=0644 uid=0 gid=0", Some("read me\n")),
    ("private", "file mode=0600 uid=0 gid=0", Some("only me\n")),
    (
        "run.sh",
        "file mode=0755 uid=0 gid=0",
        Some("#!/bin/sh\necho hi\n"),
    ),
    ("docs", "dir mode=0750 uid=0 gid=0", None),
    (
        "docs/notes",
        "file mode=0640 uid=0 gid=0",
        Some("nested notes\n"),
    ),
    (
        "notes-link",
        "symlink mode=0777 uid=0 gid=0",
        Some("nested notes\n"),
    ),
];

/// A context tree at `ctx/` with the entries of [`CONTEXT`], owned by `id`.
fn context_tree(id: &Identity) -> (TempDir, PathBuf) {
    let dir = TempDir::new("context");
    let ctx = dir.mkdir("ctx");
    dir.mkdir("ctx/docs");
    dir.write("ctx/readme", "read me\n");
    chmod(&dir.write("ctx/private", "only me\n"), 0o600);
    chmod(&dir.write("ctx/run.sh", "#!/bin/sh\necho hi\n"), 0o755);
    chmod(&dir.write("ctx/docs/notes", "nested notes\n"), 0o640);
    chmod(&ctx.join("docs"), 0o750);
    symlink("docs/notes", ctx.join("notes-link")).unwrap();
    dir.chown_all(id);
    (dir, ctx)
}

fn context_flags(ctx: &Path, mode: &str) -> Vec<String> {
    vec![
        "--context".into(),
        text(ctx),
        "--context-mode".into(),
        mode.into(),
    ]
}

fn assert_context_view(id: &Identity, flags: &[String]) {
    for (rel, meta, content) in CONTEXT {
        let path = format!("/context/{rel}");
        let seen = try_with(id, flags, &["exists", &path]);
        assert_eq!(
            (seen.ok, seen.detail.as_str()),
            (true, meta),
            "as {}: {path} ({flags:?}): {seen:?}",
            id.name
        );
        if let Some(content) = content {
            let read = try_with(id, flags, &["read", &path]);
            assert_eq!(
                (read.ok, read.detail.as_str()),
                (true, content),
                "as {}: reading {path} ({flags:?}): {read:?}",
                id.name
            );
        }
    }
}

fn assert_context_read_only(id: &Identity, mode: &str) {
    let (dir, ctx) = context_tree(id);
    let before = listing(dir.path());
    let flags = context_flags(&ctx, mode);
    assert_erofs(id, &flags, &["write", "/context/new"]);
    assert_erofs(id, &flags, &["write", "/context/readme"]);
    assert_erofs(id, &flags, &["write", "/context/docs/notes"]);
    assert_erofs(id, &flags, &["mkdir", "/context/newdir"]);
    assert_erofs(id, &flags, &["unlink", "/context/readme"]);
    assert_eq!(listing(dir.path()), before, "the host context changed");
}

fn context_copy_has_the_same_files_and_modes(id: &Identity) {
    let (_dir, ctx) = context_tree(id);
    assert_context_view(id, &context_flags(&ctx, "copy"));
}

fn context_copy_is_read_only(id: &Identity) {
    assert_context_read_only(id, "copy");
}

/// Waits inside for `/sig/go`, which the test creates after changing the
/// host's context, then prints the context's readme.
fn readme_after_a_host_change(id: &Identity, mode: &str) -> String {
    let (dir, ctx) = context_tree(id);
    let sig = dir.mkdir("sig");
    dir.chown_all(id);
    let mut flags = context_flags(&ctx, mode);
    flags.extend(["-v".into(), format!("{}:/sig", text(&sig))]);
    let script = "echo ready; while [ ! -e /sig/go ]; do sleep 0.02; done; cat /context/readme";
    let mut run = Nucleus::new(id)
        .args(&flags)
        .spawn(&["/bin/sh", "-c", script]);
    assert_eq!(run.line(), "ready");
    fs::write(ctx.join("readme"), "changed on the host\n").unwrap();
    fs::write(sig.join("go"), "").unwrap();
    let out = run.finish();
    out.assert_code(0);
    assert_eq!(out.stderr, "", "{out}");
    out.stdout
}

/// A copy lives in the sandbox's own tmpfs: later changes to the source
/// do not reach it.
fn context_copy_is_a_tmpfs_snapshot(id: &Identity) {
    let (_dir, ctx) = context_tree(id);
    let mounts = Nucleus::new(id)
        .args(context_flags(&ctx, "copy"))
        .probe(&["report"]);
    mounts.assert_code(0);
    let r = mounts.json();
    let context: Vec<_> = r["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["target"] == "/context")
        .collect();
    assert_eq!(context.len(), 1, "{}", r["mounts"]);
    assert_eq!(context[0]["fstype"], "tmpfs", "{}", context[0]);
    let opts = context[0]["mount_opts"].as_str().unwrap();
    assert!(opts.split(',').any(|o| o == "ro"), "{}", context[0]);
    assert_eq!(readme_after_a_host_change(id, "copy"), "ready\nread me\n");
}

fn context_bind_has_the_same_files_and_modes(id: &Identity) {
    let (_dir, ctx) = context_tree(id);
    assert_context_view(id, &context_flags(&ctx, "bind"));
}

fn context_bind_is_read_only(id: &Identity) {
    assert_context_read_only(id, "bind");
}

fn context_bind_sees_later_host_changes(id: &Identity) {
    assert_eq!(
        readme_after_a_host_change(id, "bind"),
        "ready\nchanged on the host\n"
    );
}

// ---------------------------------------------------------------- integrity

fn verify_flags(ctx: &Path) -> Vec<String> {
    vec![
        "--context".into(),
        text(ctx),
        "--verify-context-integrity".into(),
    ]
}

fn verified_context_runs_when_unchanged(id: &Identity) {
    let (_dir, ctx) = context_tree(id);
    let flags = verify_flags(&ctx);
    let read = try_with(id, &flags, &["read", "/context/docs/notes"]);
    assert_eq!((read.ok, read.detail.as_str()), (true, "nested notes\n"));
}

/// The hook changes the source between the manifest and the copy: setup
/// fails with 125 and the mismatch, and the command never runs.
fn refused_after_tampering(id: &Identity, hook: impl Fn(&Path) -> String) {
    let (_dir, ctx) = context_tree(id);
    let out = Nucleus::new(id)
        .env("NUCLEUS_HOOK_AFTER_CONTEXT_MANIFEST", &hook(&ctx))
        .args(verify_flags(&ctx))
        .run(&["/bin/echo", "the command ran"]);
    out.assert_code(125);
    assert_eq!(out.stdout, "", "{out}");
    let line = out.stderr_line();
    assert!(line.starts_with("nucleus: "), "{out}");
    assert!(line.contains("--context"), "{out}");
    assert!(line.contains("does not match the manifest"), "{out}");
}

fn verified_context_refuses_a_changed_file(id: &Identity) {
    refused_after_tampering(id, |ctx| {
        format!("printf tampered > '{}'", text(&ctx.join("docs/notes")))
    });
}

fn verified_context_refuses_an_added_file(id: &Identity) {
    refused_after_tampering(id, |ctx| {
        format!("printf extra > '{}'", text(&ctx.join("added")))
    });
}

fn verified_context_refuses_a_mode_change(id: &Identity) {
    refused_after_tampering(id, |ctx| {
        format!("chmod 0640 '{}'", text(&ctx.join("readme")))
    });
}

// ---------------------------------------------------------------- workspace

/// A workspace at `ws/` owned by `id`: `keep`, `modify`, `delete`, and
/// `tree/inner`.
fn workspace_tree(id: &Identity) -> (TempDir, PathBuf) {
    let dir = TempDir::new("workspace");
    let ws = dir.mkdir("ws");
    dir.mkdir("ws/tree");
    dir.write("ws/keep", "keep\n");
    dir.write("ws/modify", "old\n");
    dir.write("ws/delete", "delete me\n");
    dir.write("ws/tree/inner", "inner\n");
    dir.chown_all(id);
    (dir, ws)
}

fn workspace_flags(ws: &Path, mode: &str) -> Vec<String> {
    vec![
        "--workspace".into(),
        text(ws),
        "--workspace-mode".into(),
        mode.into(),
    ]
}

fn assert_owner(id: &Identity, path: &Path) {
    let meta = fs::symlink_metadata(path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (id.uid, id.gid),
        "owner of {} on the host",
        path.display()
    );
}

fn workspace_bind_rw_writes_land_on_the_host_as_the_caller(id: &Identity) {
    let (_dir, ws) = workspace_tree(id);
    let flags = workspace_flags(&ws, "bind-rw");
    let a = try_with(id, &flags, &["write", "/workspace/new"]);
    assert!(a.ok, "{a:?}");
    assert_eq!(fs::read_to_string(ws.join("new")).unwrap(), "x");
    assert_owner(id, &ws.join("new"));
    let a = try_with(id, &flags, &["write", "/workspace/modify"]);
    assert!(a.ok, "{a:?}");
    assert_eq!(fs::read_to_string(ws.join("modify")).unwrap(), "x");
}

fn workspace_bind_ro_refuses_writes(id: &Identity) {
    let (dir, ws) = workspace_tree(id);
    let before = listing(dir.path());
    let flags = workspace_flags(&ws, "bind-ro");
    let read = try_with(id, &flags, &["read", "/workspace/modify"]);
    assert_eq!((read.ok, read.detail.as_str()), (true, "old\n"));
    assert_erofs(id, &flags, &["write", "/workspace/new"]);
    assert_erofs(id, &flags, &["write", "/workspace/modify"]);
    assert_erofs(id, &flags, &["unlink", "/workspace/delete"]);
    assert_eq!(listing(dir.path()), before, "the host workspace changed");
}

/// New, modified and deleted files, and a new and a deleted directory.
const EDIT: &str = "set -e; cd /workspace; echo new > new; echo changed > modify; rm delete; \
                    rm -r tree; mkdir -p made/deeper; echo deep > made/deeper/file";

/// The host workspace after [`EDIT`] was synced back.
fn assert_edited(id: &Identity, ws: &Path) {
    assert_eq!(fs::read_to_string(ws.join("new")).unwrap(), "new\n");
    assert_eq!(fs::read_to_string(ws.join("modify")).unwrap(), "changed\n");
    assert_eq!(fs::read_to_string(ws.join("keep")).unwrap(), "keep\n");
    assert_eq!(
        fs::read_to_string(ws.join("made/deeper/file")).unwrap(),
        "deep\n"
    );
    assert!(!ws.join("delete").exists(), "a deleted file came back");
    assert!(!ws.join("tree").exists(), "a deleted directory came back");
    for created in ["new", "made", "made/deeper", "made/deeper/file", "modify"] {
        assert_owner(id, &ws.join(created));
    }
}

fn workspace_copy_syncs_new_modified_and_deleted_files(id: &Identity) {
    let (dir, ws) = workspace_tree(id);
    let flags = workspace_flags(&ws, "copy-in-out");
    // Inside, the copy starts as the host tree.
    let seen = sh_ok(id, &flags, "cat /workspace/modify /workspace/tree/inner");
    assert_eq!(seen, "old\ninner\n");
    let before = listing(dir.path());
    // A run that changes nothing changes nothing on the host.
    sh_ok(id, &flags, "true");
    assert_eq!(listing(dir.path()), before);
    sh_ok(id, &flags, EDIT);
    assert_edited(id, &ws);
}

fn workspace_copy_syncs_after_a_failing_command(id: &Identity) {
    let (_dir, ws) = workspace_tree(id);
    let (code, _, stderr) = sh(
        id,
        &workspace_flags(&ws, "copy-in-out"),
        &format!("{EDIT}; exit 3"),
    );
    assert_eq!((code, stderr.as_str()), (Some(3), ""));
    assert_edited(id, &ws);
}

/// A host directory outside the workspace holding one sentinel file.
fn outside_with_sentinel(dir: &TempDir) -> PathBuf {
    let outside = dir.mkdir("outside");
    dir.write("outside/sentinel", "sentinel\n");
    outside
}

/// Inside, the workload swaps the directory `tree` for a symlink to a host
/// directory outside the workspace and writes "through" it (inside, that
/// path is in the sandbox's own /tmp). The host gets the symlink itself;
/// nothing is written outside the workspace.
fn workspace_copy_keeps_a_symlink_made_inside_as_a_symlink(id: &Identity) {
    let (dir, ws) = workspace_tree(id);
    let outside = outside_with_sentinel(&dir);
    dir.chown_all(id);
    let out = text(&outside);
    let script = format!(
        "set -e; rm -r /workspace/tree; ln -s '{out}' /workspace/tree; \
         mkdir -p '{out}'; echo pwned > /workspace/tree/sentinel; \
         echo dropped > /workspace/tree/dropped; echo inner > /workspace/tree/inner"
    );
    sh_ok(id, &workspace_flags(&ws, "copy-in-out"), &script);
    let link = fs::symlink_metadata(ws.join("tree")).unwrap();
    assert!(link.file_type().is_symlink(), "tree is not a symlink");
    assert_eq!(fs::read_link(ws.join("tree")).unwrap(), outside);
    assert_owner(id, &ws.join("tree"));
    assert_eq!(
        listing(&outside),
        [format!(
            "sentinel 0644 {}:{} \"sentinel\\n\"",
            id.uid, id.gid
        )],
        "something was written outside the workspace"
    );
}

/// The host workspace holds a symlink to a directory outside it; inside,
/// the workload replaces the link with a real directory of the same name.
/// The sync must replace the host's link, not write into its target.
fn workspace_copy_replaces_a_host_symlink_instead_of_following_it(id: &Identity) {
    let (dir, ws) = workspace_tree(id);
    let outside = outside_with_sentinel(&dir);
    symlink(&outside, ws.join("link")).unwrap();
    dir.chown_all(id);
    let outside_before = listing(&outside);
    let script = "set -e; cd /workspace; rm link; mkdir link; echo pwned > link/sentinel; \
                  echo dropped > link/dropped";
    sh_ok(id, &workspace_flags(&ws, "copy-in-out"), script);
    let meta = fs::symlink_metadata(ws.join("link")).unwrap();
    assert!(meta.is_dir(), "link is still a symlink on the host");
    assert_eq!(
        fs::read_to_string(ws.join("link/sentinel")).unwrap(),
        "pwned\n"
    );
    assert_eq!(
        fs::read_to_string(ws.join("link/dropped")).unwrap(),
        "dropped\n"
    );
    assert_eq!(listing(&outside), outside_before, "the link was followed");
}

/// Edits the copy of `ws`, says "ready", and sleeps until the 1 s timeout
/// kills it; `extra` flags added.
fn edited_then_killed(id: &Identity, ws: &Path, extra: &[&str]) {
    let mut flags = workspace_flags(ws, "copy-in-out");
    flags.extend(["--timeout".into(), "1".into()]);
    flags.extend(extra.iter().map(|s| s.to_string()));
    let script = format!("{EDIT}; echo ready; exec sleep 60");
    let mut run = Nucleus::new(id)
        .args(&flags)
        .spawn(&["/bin/sh", "-c", &script]);
    assert_eq!(run.line(), "ready");
    let out = run.finish();
    out.assert_code(124);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("nucleus: timeout")),
        "{out}"
    );
    if extra.is_empty() {
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[1].contains("--sync-on-timeout"), "{out}");
    } else {
        assert_eq!(lines.len(), 1, "{out}");
    }
}

fn workspace_copy_is_not_synced_after_a_timeout(id: &Identity) {
    let (dir, ws) = workspace_tree(id);
    let before = listing(dir.path());
    edited_then_killed(id, &ws, &[]);
    assert_eq!(
        listing(dir.path()),
        before,
        "changes were synced after the timeout"
    );
}

fn workspace_copy_is_synced_after_a_timeout_on_request(id: &Identity) {
    let (_dir, ws) = workspace_tree(id);
    edited_then_killed(id, &ws, &["--sync-on-timeout"]);
    assert_edited(id, &ws);
}

// ---------------------------------------------------------------- overlay

/// A name in /usr that exists nowhere on the host, unique per test run
/// and identity.
fn usr_name(id: &Identity, label: &str) -> String {
    format!("nucleus-it-{}-{}-{label}", std::process::id(), id.name)
}

fn overlay_writes_vanish_with_the_sandbox(id: &Identity) {
    let name = usr_name(id, "overlay");
    let host = Path::new("/usr").join(&name);
    assert!(!host.exists(), "{} exists before the test", host.display());
    let inside = format!("/usr/{name}");
    let a = try_with(id, &["--overlay".into()], &["write", &inside]);
    assert!(a.ok, "{a:?}");
    assert!(
        fs::symlink_metadata(&host).is_err(),
        "the write reached the host"
    );
}

fn overlay_dir_keeps_the_writes(id: &Identity) {
    let dir = TempDir::new("overlay-dir");
    let store = dir.mkdir("store");
    dir.chown_all(id);
    let name = usr_name(id, "overlay-dir");
    let host = Path::new("/usr").join(&name);
    let flags = vec!["--overlay-dir".into(), text(&store)];
    let a = try_with(id, &flags, &["write", &format!("/usr/{name}")]);
    assert!(a.ok, "{a:?}");
    assert!(
        fs::symlink_metadata(&host).is_err(),
        "the write reached the host"
    );
    let kept = store.join("upper/usr").join(&name);
    assert_eq!(fs::read_to_string(&kept).unwrap(), "x");
    assert_owner(id, &kept);
    // A second sandbox on the same directory sees the first one's write.
    let read = try_with(id, &flags, &["read", &format!("/usr/{name}")]);
    assert_eq!((read.ok, read.detail.as_str()), (true, "x"), "{read:?}");
}

// ---------------------------------------------------------------- secrets

/// A secret file owned by `id`, mode 0600, with a value found nowhere
/// else.
fn secret_file(id: &Identity) -> (TempDir, PathBuf, String) {
    let dir = TempDir::new("secret");
    let value = format!("nucleus-it-secret-{}-{}", std::process::id(), id.name);
    let file = dir.write("token", &value);
    chmod(&file, 0o600);
    dir.chown_all(id);
    (dir, file, value)
}

fn secret_flags(file: &Path) -> Vec<String> {
    vec!["--secret".into(), format!("{}:api-token", text(file))]
}

fn secret_is_readable_mode_0400_owned_by_uid_0(id: &Identity) {
    let (_dir, file, value) = secret_file(id);
    let flags = secret_flags(&file);
    let read = try_with(id, &flags, &["read", "/run/secrets/api-token"]);
    assert_eq!((read.ok, read.detail.as_str()), (true, value.as_str()));
    let meta = try_with(id, &flags, &["exists", "/run/secrets/api-token"]);
    assert_eq!(
        (meta.ok, meta.detail.as_str()),
        (true, "file mode=0400 uid=0 gid=0")
    );
}

fn secret_is_owned_by_the_caller_with_keep_id(id: &Identity) {
    let (_dir, file, value) = secret_file(id);
    let mut flags = secret_flags(&file);
    flags.extend(["--userns".into(), "keep-id".into()]);
    let read = try_with(id, &flags, &["read", "/run/secrets/api-token"]);
    assert_eq!((read.ok, read.detail.as_str()), (true, value.as_str()));
    let meta = try_with(id, &flags, &["exists", "/run/secrets/api-token"]);
    let expected = format!("file mode=0400 uid={} gid={}", id.uid, id.gid);
    assert_eq!((meta.ok, meta.detail.as_str()), (true, expected.as_str()));
}

fn secrets_dir_is_read_only(id: &Identity) {
    let (_dir, file, value) = secret_file(id);
    let flags = secret_flags(&file);
    assert_erofs(id, &flags, &["write", "/run/secrets/api-token"]);
    assert_erofs(id, &flags, &["write", "/run/secrets/another"]);
    assert_erofs(id, &flags, &["unlink", "/run/secrets/api-token"]);
    assert_eq!(fs::read_to_string(&file).unwrap(), value);
}

fn secret_is_not_in_the_environment_or_the_output(id: &Identity) {
    let (_dir, file, value) = secret_file(id);
    let flags = secret_flags(&file);
    let environ = try_with(id, &flags, &["read", "/proc/1/environ"]);
    assert!(environ.ok, "{environ:?}");
    assert!(environ.detail.contains("PATH="), "{environ:?}");
    assert!(!environ.detail.contains(&value), "{environ:?}");
    // The whole report (environment, mounts) and everything nucleus
    // prints, with its debug log on.
    let out = Nucleus::new(id)
        .env("NUCLEUS_LOG", "debug")
        .args(&flags)
        .probe(&["report"]);
    out.assert_code(0);
    let r = out.json();
    assert!(
        r["env"].as_object().is_some_and(|e| e.len() == 2),
        "{}",
        r["env"]
    );
    assert!(!out.stdout.contains(&value), "{out}");
    assert!(!out.stderr.contains(&value), "{out}");
}

fn secret_looking_env_prints_a_hint(id: &Identity) {
    let out = Nucleus::new(id)
        .args(["-e", "GITHUB_TOKEN=x"])
        .probe(&["report"]);
    out.assert_code(0);
    let line = out.stderr_line();
    assert!(line.starts_with("nucleus: "), "{out}");
    assert!(line.contains("GITHUB_TOKEN"), "{out}");
    assert!(line.contains("--secret"), "{out}");
    // A hint, not a refusal: the variable is still set.
    assert_eq!(out.json()["env"]["GITHUB_TOKEN"], "x");
    for harmless in ["TOKENIZER=x", "KEYBOARD=x"] {
        let out = Nucleus::new(id).args(["-e", harmless]).run(&["true"]);
        out.assert_code(0);
        assert_eq!(out.stderr, "", "{harmless}: {out}");
    }
    for secretish in ["DEPLOY_KEY=x", "DB_PASSWORD=x"] {
        let out = Nucleus::new(id).args(["-e", secretish]).run(&["true"]);
        out.assert_code(0);
        assert!(out.stderr_line().contains("--secret"), "{out}");
    }
}

// ---------------------------------------------------------------- bad input

/// Top-level entries of the temp dir owned by `uid`.
fn temp_entries_of(uid: u32) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for tmp in [std::env::temp_dir(), PathBuf::from("/tmp")] {
        for entry in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            if entry.metadata().is_ok_and(|m| m.uid() == uid) {
                found.insert(text(&entry.path()));
            }
        }
    }
    found
}

/// `nucleus run FLAGS -- echo` as `id` fails with 125, prints nothing on
/// stdout (the command never ran) and one `nucleus: ` line naming `flag`;
/// returns that line. Nothing is left behind: the harness checks mounts
/// and processes; here, `dir` (the test's own tree) is unchanged, a
/// private TMPDIR stays empty, and, for the unprivileged user (whom
/// nothing else on the machine runs as), no new entry of theirs appears in
/// the temp dir. A global check as root would race with other tests.
fn refused(id: &Identity, dir: &TempDir, flags: &[String], flag: &str) -> String {
    let scratch = TempDir::new("refused-tmpdir");
    scratch.chown_all(id);
    let before = listing(dir.path());
    let user_entries = (id.uid != 0).then(|| temp_entries_of(id.uid));
    let out = Nucleus::new(id)
        .env("TMPDIR", &text(scratch.path()))
        .args(flags)
        .run(&["/bin/echo", "the command ran"]);
    let line = out.assert_refused(flag).to_owned();
    assert_eq!(listing(dir.path()), before, "{out}");
    assert_eq!(listing(scratch.path()), Vec::<String>::new(), "{out}");
    if let Some(user_entries) = user_entries {
        let now = temp_entries_of(id.uid);
        let new: Vec<_> = now.difference(&user_entries).collect();
        assert!(new.is_empty(), "new temp entries: {new:?}\n{out}");
    }
    line
}

/// A test directory owned by `id` with a regular file `file` and a
/// directory `dir`.
fn inputs(id: &Identity) -> TempDir {
    let dir = TempDir::new("bad-agent-input");
    dir.write("file", "just a file\n");
    dir.mkdir("dir");
    dir.chown_all(id);
    dir
}

fn refuses_a_context_that_is_a_file(id: &Identity) {
    let dir = inputs(id);
    let file = text(&dir.join("file"));
    let line = refused(id, &dir, &["--context".into(), file.clone()], "--context");
    assert!(line.contains("not a directory"), "{line}");
}

fn refuses_a_missing_context(id: &Identity) {
    let dir = inputs(id);
    let missing = text(&dir.join("missing"));
    refused(id, &dir, &["--context".into(), missing], "--context");
}

fn refuses_a_workspace_that_is_a_file(id: &Identity) {
    let dir = inputs(id);
    let file = text(&dir.join("file"));
    for mode in ["bind-rw", "copy-in-out"] {
        let line = refused(
            id,
            &dir,
            &workspace_flags(Path::new(&file), mode),
            "--workspace",
        );
        assert!(line.contains("not a directory"), "{line}");
    }
}

fn refuses_a_secret_that_is_a_directory(id: &Identity) {
    let dir = inputs(id);
    let src = text(&dir.join("dir"));
    let line = refused(id, &dir, &secret_flags(Path::new(&src)), "--secret");
    assert!(line.contains("not a regular file"), "{line}");
}

fn refuses_a_secret_that_is_a_device(id: &Identity) {
    let dir = inputs(id);
    let line = refused(id, &dir, &secret_flags(Path::new("/dev/null")), "--secret");
    assert!(line.contains("not a regular file"), "{line}");
}

fn refuses_a_secret_outside_run_secrets(id: &Identity) {
    let dir = inputs(id);
    let file = text(&dir.join("file"));
    for dest in ["/etc/passwd", "/run/secretsx", "/tmp/token"] {
        let flags = vec!["--secret".into(), format!("{file}:{dest}")];
        let line = refused(id, &dir, &flags, "--secret");
        assert!(line.contains("/run/secrets"), "{line}");
    }
}

fn refuses_a_secret_name_with_a_slash(id: &Identity) {
    let dir = inputs(id);
    let file = text(&dir.join("file"));
    for dest in ["../token", "/run/secrets/a/b", "a/b"] {
        let flags = vec!["--secret".into(), format!("{file}:{dest}")];
        refused(id, &dir, &flags, "--secret");
    }
}

fn refuses_overlay_dir_on_procfs(id: &Identity) {
    let dir = inputs(id);
    let line = refused(
        id,
        &dir,
        &["--overlay-dir".into(), "/proc".into()],
        "--overlay-dir",
    );
    assert!(line.contains("procfs"), "{line}");
}

fn refuses_verifying_a_bound_context(id: &Identity) {
    let dir = inputs(id);
    let mut flags = context_flags(&dir.join("dir"), "bind");
    flags.push("--verify-context-integrity".into());
    refused(id, &dir, &flags, "--verify-context-integrity");
}

fn refuses_sync_on_timeout_without_copy_in_out(id: &Identity) {
    let dir = inputs(id);
    let mut flags = workspace_flags(&dir.join("dir"), "bind-rw");
    flags.push("--sync-on-timeout".into());
    refused(id, &dir, &flags, "--sync-on-timeout");
}

/// A copied context holding `unreadable`, mode 000, owned by `owner`: the
/// caller cannot read it, so setup stops with 125 naming --context (when
/// hashing it as the caller with `verify`, else when copying it). As root
/// every file is readable, so these run as the unprivileged user only.
fn refuses_a_context_with_an_unreadable_file(id: &Identity, owner: u32, verify: bool) {
    let dir = TempDir::new("unreadable-context");
    dir.mkdir("ctx");
    dir.write("ctx/readable", "fine\n");
    let secret = dir.write("ctx/unreadable", "not for you\n");
    dir.chown_all(id);
    std::os::unix::fs::lchown(&secret, Some(owner), Some(owner)).unwrap();
    chmod(&secret, 0o000);
    let mut flags = context_flags(&dir.join("ctx"), "copy");
    if verify {
        flags.push("--verify-context-integrity".into());
    }
    let line = refused(id, &dir, &flags, "--context");
    assert!(line.contains("unreadable"), "{line}");
    assert!(line.contains("Permission denied"), "{line}");
}

fn user() -> Option<Identity> {
    Who::User.resolve()
}

#[test]
fn refuses_a_context_with_another_users_mode_000_file() {
    if let Some(id) = user() {
        refuses_a_context_with_an_unreadable_file(&id, 0, false);
        refuses_a_context_with_an_unreadable_file(&id, 0, true);
    }
}

#[test]
fn refuses_a_context_with_an_own_mode_000_file_when_verifying() {
    if let Some(id) = user() {
        refuses_a_context_with_an_unreadable_file(&id, id.uid, true);
    }
}

#[test]
fn refuses_a_context_with_an_own_mode_000_file() {
    if let Some(id) = user() {
        refuses_a_context_with_an_unreadable_file(&id, id.uid, false);
    }
}

#[test]
fn refuses_a_workspace_copy_with_an_own_mode_000_file() {
    if let Some(id) = user() {
        let dir = TempDir::new("unreadable-workspace");
        dir.mkdir("ws");
        let secret = dir.write("ws/unreadable", "not for you\n");
        dir.chown_all(&id);
        chmod(&secret, 0o000);
        let flags = workspace_flags(&dir.join("ws"), "copy-in-out");
        refused(&id, &dir, &flags, "--workspace");
    }
}

#[test]
fn refuses_a_workspace_copy_with_another_users_unreadable_file() {
    if let Some(id) = user() {
        let dir = TempDir::new("unreadable-workspace");
        dir.mkdir("ws");
        let secret = dir.write("ws/unreadable", "not for you\n");
        dir.chown_all(&id);
        std::os::unix::fs::lchown(&secret, Some(0), Some(0)).unwrap();
        chmod(&secret, 0o000);
        let flags = workspace_flags(&dir.join("ws"), "copy-in-out");
        let line = refused(&id, &dir, &flags, "--workspace");
        assert!(line.contains("unreadable"), "{line}");
    }
}

#[test]
fn refuses_an_unreadable_secret() {
    if let Some(id) = user() {
        let dir = TempDir::new("unreadable-secret");
        let file = dir.write("token", "root's\n");
        chmod(&file, 0o600);
        let line = refused(&id, &dir, &secret_flags(&file), "--secret");
        assert!(line.contains("Permission denied"), "{line}");
    }
}

/// A FIFO at `dir/fifo`, owned by `id`. Opening it for reading blocks
/// until a writer comes, which none will.
fn fifo(id: &Identity, dir: &TempDir) -> String {
    let path = dir.join("fifo");
    super::harness::sys::mkfifo(&path, 0o600)
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
    std::os::unix::fs::lchown(&path, Some(id.uid), Some(id.gid)).unwrap();
    text(&path)
}

fn refuses_a_context_that_is_a_fifo(id: &Identity) {
    let dir = inputs(id);
    let fifo = fifo(id, &dir);
    refused(id, &dir, &["--context".into(), fifo], "--context");
}

fn refuses_a_workspace_that_is_a_fifo(id: &Identity) {
    let dir = inputs(id);
    let fifo = fifo(id, &dir);
    refused(
        id,
        &dir,
        &workspace_flags(Path::new(&fifo), "bind-rw"),
        "--workspace",
    );
}

fn refuses_a_secret_that_is_a_fifo(id: &Identity) {
    let dir = inputs(id);
    let fifo = fifo(id, &dir);
    refused(id, &dir, &secret_flags(Path::new(&fifo)), "--secret");
}
