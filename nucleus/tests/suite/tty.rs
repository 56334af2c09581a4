//! `-t`: the workload gets a terminal of its own (allocated by nucleus, no
//! host tty needed), is its session leader, and job control works.

use serde_json::json;

use super::harness::{Identity, Nucleus};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

as_root_and_user!(
    workload_owns_its_terminal,
    term_comes_from_the_caller,
    job_control_works,
);

fn workload_owns_its_terminal(id: &Identity) {
    let out = Nucleus::new(id).arg("-t").probe(&["tty"]);
    out.assert_code(0);
    let t = out.json();
    assert_eq!(
        t["isatty"],
        json!({"0": true, "1": true, "2": true}),
        "{out}"
    );
    assert_eq!((&t["sid"], &t["pid"]), (&json!(1), &json!(1)), "{out}");
    assert_eq!(t["tcgetpgrp"], t["pgrp"], "foreground group\n{out}");
    assert_eq!(t["ttyname"], "/dev/pts/0", "{out}");
}

fn term_comes_from_the_caller(id: &Identity) {
    let out = Nucleus::new(id)
        .env("TERM", "vt220")
        .arg("-t")
        .probe(&["report"]);
    out.assert_code(0);
    assert_eq!(
        out.json()["env"],
        json!({"PATH": DEFAULT_PATH, "HOME": "/tmp", "TERM": "vt220"})
    );
}

/// An interactive bash can put a job in the background, list it and kill
/// it by job number; without a controlling terminal it would say "no job
/// control in this shell".
fn job_control_works(id: &Identity) {
    let out = Nucleus::new(id).arg("-t").run(&[
        "bash",
        "-i",
        "-c",
        "sleep 5 & jobs; kill %1; wait; echo jobctl-ok",
    ]);
    out.assert_code(0);
    assert!(out.stdout.contains("jobctl-ok"), "{out}");
    assert!(!out.stdout.contains("no job control"), "{out}");
    assert!(
        !out.stdout.contains("cannot set terminal process group"),
        "{out}"
    );
    assert!(out.stdout.contains("Running"), "jobs listed nothing\n{out}");
}
