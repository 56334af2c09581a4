//! Escape attempts from inside: writing the read-only tree, the mount API,
//! new or foreign namespaces, tracing, the kernel's attack surface,
//! terminal injection, other syscall ABIs and credentials. Each must fail,
//! with the exact errno the defences promise.

use libc::{EINVAL, ENOSYS, EPERM, EROFS};

use super::harness::{assert_denied, attempt, Attempt, Identity};

as_root_and_user!(
    write_to_usr,
    write_to_etc_passwd,
    write_to_dev_and_sys,
    create_in_the_root,
    mount_tmpfs,
    open_tree,
    fsopen,
    umount_proc,
    pivot_root,
    chroot,
    unshare_user,
    unshare_mount,
    clone_newuser_is_refused,
    clone_newuser_fails_with_eperm,
    clone3,
    clone3_newuser,
    setns_user,
    ptrace_attach_pid_1,
    ptrace_traceme,
    bpf,
    keyctl,
    add_key,
    io_uring_setup,
    userfaultfd,
    perf_event_open,
    tiocsti,
    tiocsti_high_bits,
    tioclinux,
    x32_syscall_is_not_executed,
    x32_syscall_kills_with_sigsys,
    i386_syscall_kills_with_sigsys,
    mknod,
    chown_to_unmapped_ids,
    chown_in_read_only_tree,
    setuid_to_unmapped_id,
    sethostname,
    reboot,
    cap_raise,
);

fn write_to_usr(id: &Identity) {
    assert_denied(id, &[], &["write", "/usr/x"], EROFS);
}

fn write_to_etc_passwd(id: &Identity) {
    assert_denied(id, &[], &["write", "/etc/passwd"], EROFS);
}

fn write_to_dev_and_sys(id: &Identity) {
    assert_denied(id, &[], &["write", "/dev/x"], EROFS);
    assert_denied(id, &[], &["write", "/sys/x"], EROFS);
}

fn create_in_the_root(id: &Identity) {
    assert_denied(id, &[], &["mkdir", "/x"], EROFS);
}

fn mount_tmpfs(id: &Identity) {
    assert_denied(id, &[], &["mount-tmpfs", "/tmp"], EPERM);
}

fn open_tree(id: &Identity) {
    assert_denied(id, &[], &["open-tree", "/"], EPERM);
}

fn fsopen(id: &Identity) {
    assert_denied(id, &[], &["fsopen"], EPERM);
}

fn umount_proc(id: &Identity) {
    assert_denied(id, &[], &["umount", "/proc"], EPERM);
}

fn pivot_root(id: &Identity) {
    assert_denied(id, &[], &["pivot-root"], EPERM);
}

fn chroot(id: &Identity) {
    assert_denied(id, &[], &["chroot", "/tmp"], EPERM);
}

fn unshare_user(id: &Identity) {
    assert_denied(id, &[], &["unshare-user"], EPERM);
}

fn unshare_mount(id: &Identity) {
    assert_denied(id, &[], &["unshare-mount"], EPERM);
}

/// No child is created, whatever the errno (see the EPERM test below).
fn clone_newuser_is_refused(id: &Identity) {
    let a = attempt(id, &[], &["clone-newuser"]);
    assert!(
        !a.ok && matches!(a.errno, Some(EPERM | ENOSYS)),
        "clone(CLONE_NEWUSER) must fail before creating a child: {a:?}"
    );
}

fn clone_newuser_fails_with_eperm(id: &Identity) {
    assert_denied(id, &[], &["clone-newuser"], EPERM);
}

fn clone3(id: &Identity) {
    assert_denied(id, &[], &["clone3"], ENOSYS);
}

fn clone3_newuser(id: &Identity) {
    assert_denied(id, &[], &["clone3", "newuser"], ENOSYS);
}

fn setns_user(id: &Identity) {
    assert_denied(id, &[], &["setns", "/proc/self/ns/user"], EPERM);
}

fn ptrace_attach_pid_1(id: &Identity) {
    assert_denied(id, &[], &["ptrace-attach", "1"], EPERM);
}

fn ptrace_traceme(id: &Identity) {
    assert_denied(id, &[], &["ptrace-traceme"], EPERM);
}

fn bpf(id: &Identity) {
    assert_denied(id, &[], &["bpf"], EPERM);
}

fn keyctl(id: &Identity) {
    assert_denied(id, &[], &["keyctl"], EPERM);
}

fn add_key(id: &Identity) {
    assert_denied(id, &[], &["add-key"], EPERM);
}

fn io_uring_setup(id: &Identity) {
    assert_denied(id, &[], &["io-uring-setup"], EPERM);
}

fn userfaultfd(id: &Identity) {
    assert_denied(id, &[], &["userfaultfd"], EPERM);
}

fn perf_event_open(id: &Identity) {
    assert_denied(id, &[], &["perf-event-open"], EPERM);
}

/// With `-t` fd 0 is the sandbox's terminal, so only seccomp stands
/// between the workload and the ioctl (no host tty is involved).
fn tiocsti(id: &Identity) {
    assert_denied(id, &["-t"], &["tiocsti"], EPERM);
}

/// The kernel reads only the low 32 bits of the request; so must the filter.
fn tiocsti_high_bits(id: &Identity) {
    assert_denied(id, &["-t"], &["tiocsti-high-bits"], EPERM);
}

fn tioclinux(id: &Identity) {
    assert_denied(id, &["-t"], &["tioclinux"], EPERM);
}

/// The probe forks for this: the x32 getpid either fails or takes the
/// child down, but never returns a pid.
fn x32_syscall_is_not_executed(id: &Identity) {
    let a = attempt(id, &[], &["x32-syscall"]);
    let refused =
        a.errno == Some(ENOSYS) || (a.errno.is_none() && a.detail == "killed by signal 31");
    assert!(!a.ok && refused, "x32 getpid ran: {a:?}");
}

/// libseccomp treats x32 numbers in an x86_64-only filter as a foreign
/// architecture: the process is killed, like for i386.
fn x32_syscall_kills_with_sigsys(id: &Identity) {
    let a = attempt(id, &[], &["x32-syscall"]);
    assert_eq!(
        (a.ok, a.errno, a.detail.as_str()),
        (false, None, "killed by signal 31"),
        "{a:?}"
    );
}

fn i386_syscall_kills_with_sigsys(id: &Identity) {
    let a = attempt(id, &[], &["i386-syscall"]);
    let killed = Attempt {
        ok: false,
        errno: None,
        detail: format!("killed by signal {}", libc::SIGSYS),
    };
    assert_eq!(a, killed);
}

fn mknod(id: &Identity) {
    assert_denied(id, &[], &["mknod", "/tmp/n"], EPERM);
}

/// Only one uid and gid are mapped: anything else does not exist here.
fn chown_to_unmapped_ids(id: &Identity) {
    assert_denied(id, &[], &["chown", "/tmp", "1", "1"], EINVAL);
}

fn chown_in_read_only_tree(id: &Identity) {
    assert_denied(id, &[], &["chown", "/usr/bin/true", "0", "0"], EROFS);
}

fn setuid_to_unmapped_id(id: &Identity) {
    assert_denied(id, &[], &["setuid", "1"], EINVAL);
}

/// The sandbox owns its UTS namespace, but has no capability left in it.
fn sethostname(id: &Identity) {
    assert_denied(id, &[], &["sethostname", "evil"], EPERM);
}

fn reboot(id: &Identity) {
    assert_denied(id, &[], &["reboot"], EPERM);
}

fn cap_raise(id: &Identity) {
    // 21: CAP_SYS_ADMIN.
    assert_denied(id, &[], &["cap-raise", "21"], EPERM);
}
