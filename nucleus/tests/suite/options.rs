//! The options that shape the workload's process: ids, environment,
//! working directory, hostname, name.

use serde_json::{json, Value};

use super::harness::{attempt, report, words, Identity, Nucleus, TempDir};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

as_root_and_user!(
    keep_id_keeps_the_callers_ids,
    subids_maps_the_callers_subordinate_ranges,
    env_options_and_env_file_add_exactly_what_was_asked,
    env_key_alone_copies_the_callers_value,
    workdir_sets_the_cwd,
    hostname_option,
    name_becomes_the_hostname,
    hostname_wins_over_name,
);

/// `--userns subids`: 0 is the caller, 1 and up the caller's first
/// /etc/subuid and /etc/subgid ranges (tests/run-all gives root and the
/// test user one each); root's sandbox is the range alone, so its 0 is
/// never the host's root.
fn subids_maps_the_callers_subordinate_ranges(id: &Identity) {
    let first = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() == 3 && (f[0] == id.name || f[0] == id.uid.to_string())).then(|| {
                    if id.uid == 0 {
                        format!("0 {} {}", f[1], f[2])
                    } else {
                        format!("1 {} {}", f[1], f[2])
                    }
                })
            })
            .unwrap_or_else(|| {
                panic!(
                    "{file} has no range for {} (tests/run-all adds one)",
                    id.name
                )
            })
    };
    let r = report(id, &["--userns", "subids"]);
    let own = |own_id: u32| {
        if id.uid == 0 {
            String::new()
        } else {
            format!("0 {own_id} 1 ")
        }
    };
    assert_eq!(
        words(&r["uid_map"]),
        format!("{}{}", own(id.uid), first("/etc/subuid"))
    );
    assert_eq!(
        words(&r["gid_map"]),
        format!("{}{}", own(id.gid), first("/etc/subgid"))
    );
    assert_eq!((&r["uid"], &r["gid"]), (&Value::from(0), &Value::from(0)));
}

fn keep_id_keeps_the_callers_ids(id: &Identity) {
    let r = report(id, &["--userns", "keep-id"]);
    assert_eq!(
        (&r["uid"], &r["gid"], &r["euid"], &r["egid"]),
        (
            &Value::from(id.uid),
            &Value::from(id.gid),
            &Value::from(id.uid),
            &Value::from(id.gid)
        )
    );
    assert_eq!(words(&r["uid_map"]), format!("{0} {0} 1", id.uid));
    assert_eq!(words(&r["gid_map"]), format!("{0} {0} 1", id.gid));
}

fn env_options_and_env_file_add_exactly_what_was_asked(id: &Identity) {
    let dir = TempDir::new("env-file");
    let file = dir.write("vars", "# a comment\n\nFILE_A=1\nFILE_B = x=y\n");
    let out = Nucleus::new(id)
        .args(["-e", "CLI_A=hello world", "-e", "CLI_EMPTY="])
        .arg("--env-file")
        .arg(&file)
        .probe(&["report"]);
    out.assert_code(0);
    assert_eq!(
        out.json()["env"],
        json!({
            "PATH": DEFAULT_PATH,
            "HOME": "/tmp",
            "FILE_A": "1",
            "FILE_B": " x=y",
            "CLI_A": "hello world",
            "CLI_EMPTY": "",
        })
    );
}

fn env_key_alone_copies_the_callers_value(id: &Identity) {
    let out = Nucleus::new(id)
        .env("NUCLEUS_IT_COPIED", "from the caller")
        .env("NUCLEUS_IT_NOT_ASKED", "stays outside")
        .args(["-e", "NUCLEUS_IT_COPIED"])
        .probe(&["report"]);
    out.assert_code(0);
    let env = &out.json()["env"];
    assert_eq!(env["NUCLEUS_IT_COPIED"], "from the caller", "{env}");
    assert_eq!(env.as_object().map(|e| e.len()), Some(3), "{env}");
}

fn workdir_sets_the_cwd(id: &Identity) {
    assert_eq!(report(id, &["-w", "/probe"])["cwd"], "/probe");
    let cwd = attempt(id, &["-w", "/tmp"], &["cwd"]);
    // ok: the path getcwd returns names the same inode as ".".
    assert!(cwd.ok, "{cwd:?}");
    assert_eq!(cwd.detail, "/tmp");
}

fn hostname_option(id: &Identity) {
    assert_eq!(report(id, &["--hostname", "box-7"])["hostname"], "box-7");
}

fn name_becomes_the_hostname(id: &Identity) {
    assert_eq!(report(id, &["--name", "agent-3"])["hostname"], "agent-3");
}

fn hostname_wins_over_name(id: &Identity) {
    let r = report(id, &["--name", "agent-3", "--hostname", "h1"]);
    assert_eq!(r["hostname"], "h1");
}

as_root_and_user!(user_and_groups_own_the_workload_and_its_writable_paths);

/// `--user`, `--group`, `--additional-group` by name (the host's
/// /etc/passwd and /etc/group: daemon is 1, users is 100), under the
/// caller's subordinate ranges; /tmp and the secrets are theirs.
fn user_and_groups_own_the_workload_and_its_writable_paths(id: &Identity) {
    let dir = super::harness::TempDir::new("identity");
    let secret = dir.write("token", "s3cret");
    super::harness::give(&secret, id);
    let out = Nucleus::new(id)
        .args([
            "--userns",
            "subids",
            "--user",
            "daemon",
            "--additional-group",
            "users",
            "--secret",
        ])
        .arg(format!("{}:token", secret.display()))
        .run(&[
            "sh",
            "-c",
            "id -u; id -g; id -G; stat -c %u /tmp; stat -c %u /run/secrets/token; cat /run/secrets/token",
        ]);
    out.assert_code(0);
    assert_eq!(out.stdout, "1\n1\n1 100\n1\n1\ns3cret", "{out}");
    // Unmapped ids are refused before anything starts.
    Nucleus::bare(id)
        .args(["--user", "daemon"])
        .run(&["true"])
        .assert_refused("add --userns subids");
}
