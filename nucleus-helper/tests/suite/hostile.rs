//! A hostile client against the real helper binary on a socket pair:
//! garbage, truncated, oversized and wrong-version frames, bad digests,
//! invalid plans, wrong descriptor counts and kinds. Each must end in a
//! typed error (or a clean close), never a panic, never a sandbox.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;

use protocol::testing::sample_plan;
use protocol::*;

/// This test process's stand-ins for the unit's RuntimeDirectory,
/// StateDirectory and LogsDirectory, shared by every helper it starts
/// (each sees them at the real paths, in a mount namespace of its own).
fn state_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        // Under target/tmp, not the host's /tmp; one per test process.
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("nucleus-hostile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["run/nucleus/sandboxes", "lib/nucleus", "log/nucleus"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        root
    })
}

fn records() -> PathBuf {
    state_root().join("run/nucleus/sandboxes")
}

/// The helper as systemd would start it, with `sock` as its connection.
fn spawn_helper(sock: UnixStream) -> Child {
    let fd = sock.as_raw_fd();
    let root = state_root();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        // The system bus (tests/host-polkit/run's, if any) stays reachable.
        "if [ -d /run/dbus ]; then mkdir -p \"$1/run/dbus\" && mount --bind /run/dbus \"$1/run/dbus\"; fi && \
         mount --rbind \"$1/run\" /run && mount --bind \"$1/lib\" /var/lib && \
         mount --bind \"$1/log\" /var/log && LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\"",
        env!("CARGO_BIN_EXE_nucleus-helper"),
    ])
    .arg(root);
    // SAFETY: between fork and exec only dup2 runs, which is async-signal-safe;
    // it puts the connection at descriptor 3 (without close-on-exec).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("helper starts");
    drop(sock);
    child
}

fn connect() -> (UnixStream, Child) {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    let child = spawn_helper(theirs);
    (ours, child)
}

fn frame(message: Message) -> Vec<u8> {
    encode_frame(&Envelope::new(message)).expect("encodes")
}

fn send_fds(sock: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
    let sent = sandbox::signals::send_with_fds(sock.as_fd(), bytes, fds).expect("sendmsg");
    (&*sock).write_all(&bytes[sent..]).expect("write");
}

/// The next message from the helper, or None on EOF.
fn reply(sock: &mut UnixStream) -> Option<Message> {
    let mut header = [0u8; 4];
    sock.read_exact(&mut header).ok()?;
    let len = u32::from_be_bytes(header) as usize;
    let mut frame = vec![0u8; 4 + len];
    frame[..4].copy_from_slice(&header);
    sock.read_exact(&mut frame[4..]).ok()?;
    decode_frame(&frame)
        .expect("helper frames decode")
        .map(|(e, _)| e.message)
}

fn expect_error(sock: &mut UnixStream, code: ErrorCode, needle: &str) {
    expect_refusal(reply(sock), code, needle);
}

fn expect_refusal(answer: Option<Message>, code: ErrorCode, needle: &str) {
    match answer {
        Some(Message::Error { code: c, message }) => {
            assert_eq!(c, code, "{message}");
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        other => panic!("expected Error({code:?}), got {other:?}"),
    }
}

/// The helper exited on its own, without a panic (status 0).
fn finished_cleanly(mut child: Child) {
    let status = child.wait().expect("wait");
    assert!(status.success(), "helper exited with {status}");
}

fn hello(sock: &mut UnixStream) {
    sock.write_all(&frame(Message::Hello {
        version: PROTOCOL_VERSION,
    }))
    .unwrap();
    assert!(matches!(
        reply(sock),
        Some(Message::Welcome {
            version: PROTOCOL_VERSION
        })
    ));
}

fn launch_bytes(plan: &Plan) -> (Vec<u8>, PlanDigest) {
    let bytes = plan.encode().unwrap();
    let digest = PlanDigest::of_bytes(&bytes);
    (bytes, digest)
}

/// The test process's mount namespace, kept open for the whole run.
fn mount_ns() -> &'static File {
    static NS: OnceLock<File> = OnceLock::new();
    NS.get_or_init(|| File::open("/proc/self/ns/mnt").unwrap())
}

/// `fds` followed by the test's own stdin, stdout and stderr and its
/// mount namespace.
fn with_stdio<'a>(fds: &[BorrowedFd<'a>]) -> Vec<BorrowedFd<'a>> {
    let mut all = fds.to_vec();
    // SAFETY: 0, 1 and 2 stay open for the whole test process.
    all.extend((0..3).map(|fd| unsafe { BorrowedFd::borrow_raw(fd) }));
    all.push(mount_ns().as_fd());
    all
}

/// Launch with `fds` for the host paths, then the test's stdio and mount
/// namespace.
fn send_launch(sock: &UnixStream, plan: Vec<u8>, digest: PlanDigest, fds: &[BorrowedFd<'_>]) {
    send_fds(
        sock,
        &frame(Message::Launch { plan, digest }),
        &with_stdio(fds),
    );
}

/// Dynamically linked programs need their loader and libraries.
fn with_libraries(plan: &mut Plan) {
    for dir in ["lib", "lib64"] {
        plan.mounts.push(Mount::Symlink {
            target: AbsPath::try_from(format!("/{dir}")).unwrap(),
            link_to: Arg::try_from(format!("usr/{dir}")).unwrap(),
        });
    }
}

fn open_dir(path: &str) -> OwnedFd {
    File::open(path).unwrap().into()
}

#[test]
fn garbage_is_refused() {
    let (mut sock, child) = connect();
    sock.write_all(&[0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])
        .unwrap();
    expect_error(&mut sock, ErrorCode::BadRequest, "");
    finished_cleanly(child);
}

#[test]
fn truncated_frames_end_the_connection() {
    let (mut sock, child) = connect();
    sock.write_all(&[0, 0, 0, 100, 1, 2]).unwrap();
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    expect_error(&mut sock, ErrorCode::BadRequest, "middle of a frame");
    finished_cleanly(child);
}

#[test]
fn oversized_frames_are_refused_before_reading() {
    let (mut sock, child) = connect();
    sock.write_all(&(2u32 << 20).to_be_bytes()).unwrap();
    expect_error(&mut sock, ErrorCode::BadRequest, "limit");
    finished_cleanly(child);
}

#[test]
fn unknown_versions_are_refused() {
    let (mut sock, child) = connect();
    let mut env = Envelope::new(Message::Hello { version: 9 });
    env.version = 9;
    sock.write_all(&encode_frame(&env).unwrap()).unwrap();
    expect_error(&mut sock, ErrorCode::Unsupported, "version 9");
    finished_cleanly(child);

    let (mut sock, child) = connect();
    sock.write_all(&frame(Message::Hello { version: 7 }))
        .unwrap();
    expect_error(&mut sock, ErrorCode::Unsupported, "version 7");
    finished_cleanly(child);
}

#[test]
fn launch_before_hello_is_refused() {
    let (mut sock, child) = connect();
    let (plan, digest) = launch_bytes(&sample_plan());
    sock.write_all(&frame(Message::Launch { plan, digest }))
        .unwrap();
    expect_error(&mut sock, ErrorCode::BadRequest, "Hello");
    finished_cleanly(child);
}

#[test]
fn a_wrong_digest_is_refused() {
    let (mut sock, child) = connect();
    hello(&mut sock);
    let (plan, _) = launch_bytes(&sample_plan());
    sock.write_all(&frame(Message::Launch {
        plan,
        digest: PlanDigest([7; 32]),
    }))
    .unwrap();
    expect_error(&mut sock, ErrorCode::InvalidPlan, "digest");
    finished_cleanly(child);
}

#[test]
fn plans_failing_validation_are_refused() {
    let mut plan = sample_plan();
    plan.ids.uid = 12345;
    // Encode without validating, as a hostile client would.
    let bytes = bincode::serde::encode_to_vec(&plan, bincode::config::standard()).unwrap();
    let digest = PlanDigest::of_bytes(&bytes);
    let (mut sock, child) = connect();
    hello(&mut sock);
    sock.write_all(&frame(Message::Launch {
        plan: bytes,
        digest,
    }))
    .unwrap();
    expect_error(&mut sock, ErrorCode::InvalidPlan, "not mapped");
    finished_cleanly(child);
}

#[test]
fn descriptor_counts_must_match_the_plan() {
    // sample_plan binds /usr: exactly one descriptor is expected.
    let (plan, digest) = launch_bytes(&sample_plan());
    let (mut sock, child) = connect();
    hello(&mut sock);
    sock.write_all(&frame(Message::Launch {
        plan: plan.clone(),
        digest,
    }))
    .unwrap();
    expect_error(
        &mut sock,
        ErrorCode::BadRequest,
        "needs 5 descriptors (host paths, secrets, stdio, mount namespace); 0 came",
    );
    finished_cleanly(child);

    let (mut sock, child) = connect();
    hello(&mut sock);
    let (a, b) = (open_dir("/usr"), open_dir("/etc"));
    send_fds(
        &sock,
        &frame(Message::Launch { plan, digest }),
        &[a.as_fd(), b.as_fd()],
    );
    expect_error(&mut sock, ErrorCode::BadRequest, "2 came");
    finished_cleanly(child);
}

#[test]
fn too_many_descriptors_are_refused() {
    let (plan, digest) = launch_bytes(&sample_plan());
    let (mut sock, child) = connect();
    hello(&mut sock);
    let dev_null: Vec<OwnedFd> = (0..MAX_LAUNCH_FDS + 1)
        .map(|_| File::open("/dev/null").unwrap().into())
        .collect();
    let fds: Vec<BorrowedFd<'_>> = dev_null.iter().map(|f| f.as_fd()).collect();
    send_fds(&sock, &frame(Message::Launch { plan, digest }), &fds);
    expect_error(&mut sock, ErrorCode::BadRequest, "descriptors");
    finished_cleanly(child);
}

#[test]
fn descriptors_of_the_wrong_kind_are_refused() {
    let mut plan = sample_plan();
    plan.mounts = vec![Mount::CopyFile {
        source: AbsPath::try_from("/etc/hosts").unwrap(),
        target: AbsPath::try_from("/etc/hosts").unwrap(),
    }];
    let (bytes, digest) = launch_bytes(&plan);
    let (mut sock, child) = connect();
    hello(&mut sock);
    // A directory where the plan says a regular file.
    let dir = open_dir("/usr");
    send_launch(&sock, bytes, digest, &[dir.as_fd()]);
    expect_error(&mut sock, ErrorCode::BadRequest, "not a File");
    finished_cleanly(child);
}

#[test]
fn o_path_descriptors_are_refused() {
    let (plan, digest) = launch_bytes(&sample_plan());
    let (mut sock, child) = connect();
    hello(&mut sock);
    let path = std::ffi::CString::new("/usr").unwrap();
    // SAFETY: open(2) of a NUL-terminated path; the new descriptor is owned below.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    assert!(raw >= 0);
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    send_fds(
        &sock,
        &frame(Message::Launch { plan, digest }),
        &with_stdio(&[fd.as_fd()]),
    );
    expect_error(&mut sock, ErrorCode::BadRequest, "O_PATH");
    finished_cleanly(child);
}

/// Launches `argv` (from /usr) as root through a helper; returns the
/// connection, the helper and the sandbox's id once it has started.
fn launch(argv: &[&str], tty: bool) -> (UnixStream, Child, SandboxId) {
    let mut plan = sample_plan();
    plan.process.argv = Argv::try_from(
        argv.iter()
            .map(|a| Arg::try_from(*a).unwrap())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    plan.process.tty = tty;
    with_libraries(&mut plan);
    let (bytes, digest) = launch_bytes(&plan);
    let (mut sock, child) = connect();
    hello(&mut sock);
    let usr = open_dir("/usr");
    send_launch(&sock, bytes, digest, &[usr.as_fd()]);
    match reply(&mut sock) {
        Some(Message::Started { id, digest: d }) => {
            assert_eq!(d, digest);
            (sock, child, id)
        }
        other => panic!("expected Started, got {other:?}"),
    }
}

/// A management request on a connection of its own.
fn request(sock: &mut UnixStream, message: Message) -> Option<Message> {
    hello(sock);
    sock.write_all(&frame(message)).unwrap();
    reply(sock)
}

fn expect_exit(sock: &mut UnixStream, child: Child, status: ExitStatus) {
    assert_eq!(reply(sock), Some(Message::Exited(status)));
    finished_cleanly(child);
}

#[test]
fn a_terminal_plan_runs_with_the_callers_stdio() {
    let (mut sock, child, id) = launch(&["/usr/bin/true"], true);
    expect_exit(&mut sock, child, ExitStatus::Code(0));
    assert!(
        !records().join(id.as_str()).exists(),
        "the record is removed at exit"
    );
}

#[test]
fn management_requests_carry_no_descriptors() {
    let (mut sock, child) = connect();
    hello(&mut sock);
    let usr = open_dir("/usr");
    send_fds(&sock, &frame(Message::List), &[usr.as_fd()]);
    expect_error(
        &mut sock,
        ErrorCode::BadRequest,
        "only Launch carries descriptors",
    );
    finished_cleanly(child);
}

#[test]
fn unknown_sandbox_ids_are_not_found() {
    let (mut sock, child) = connect();
    let id = SandboxId::try_from("00000000deadbeef").unwrap();
    match request(
        &mut sock,
        Message::Stop {
            id,
            signal: StopSignal::Kill,
        },
    ) {
        Some(Message::Error { code, message }) => {
            assert_eq!(code, ErrorCode::NotFound, "{message}");
            assert!(message.contains("nucleus ps"), "{message}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    finished_cleanly(child);
}

/// A connection whose peer, to the kernel, is a process running as `uid`
/// (SO_PEERCRED names whoever made the socket pair). The process lives
/// until the returned keeper is dropped, so its pidfd stays valid.
struct Peer {
    pid: libc::pid_t,
    hold: UnixStream,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.hold.shutdown(std::net::Shutdown::Both);
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
    }
}

fn connect_as(uid: u32) -> (UnixStream, Child, Peer) {
    let (parent, child_end) = UnixStream::pair().unwrap();
    let (hold, hold_child) = UnixStream::pair().unwrap();
    let (send_fd, hold_fd) = (child_end.as_raw_fd(), hold_child.as_raw_fd());
    // SAFETY: the child runs only raw system calls on memory prepared on
    // its stack, then _exits: nothing that could deadlock after a fork
    // from a multi-threaded test process.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            // Copies of other tests' connections must not stay open here.
            let (low, high) = (send_fd.min(hold_fd) as u32, send_fd.max(hold_fd) as u32);
            libc::syscall(libc::SYS_close_range, 3u32, low - 1, 0u32);
            libc::syscall(libc::SYS_close_range, low + 1, high - 1, 0u32);
            libc::syscall(libc::SYS_close_range, high + 1, u32::MAX, 0u32);
            if libc::syscall(libc::SYS_setresgid, uid, uid, uid) != 0
                || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
            {
                libc::_exit(1);
            }
            let mut pair = [0i32; 2];
            if libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                pair.as_mut_ptr(),
            ) != 0
            {
                libc::_exit(2);
            }
            let mut byte = [0u8; 1];
            let mut iov = libc::iovec {
                iov_base: byte.as_mut_ptr().cast(),
                iov_len: 1,
            };
            let mut control = [0u64; 8];
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(8) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(8) as usize;
            std::ptr::copy_nonoverlapping(pair.as_ptr(), libc::CMSG_DATA(cmsg).cast::<i32>(), 2);
            if libc::sendmsg(send_fd, &msg, 0) != 1 {
                libc::_exit(3);
            }
            libc::close(pair[0]);
            libc::close(pair[1]);
            // Alive until the parent closes its end.
            libc::read(hold_fd, byte.as_mut_ptr().cast(), 1);
            libc::_exit(0);
        }
    }
    drop((child_end, hold_child));
    let fds = recv_fds(&parent);
    let [ours, theirs]: [OwnedFd; 2] = fds.try_into().expect("two descriptors");
    let child = spawn_helper(UnixStream::from(theirs));
    (UnixStream::from(ours), child, Peer { pid, hold })
}

fn recv_fds(sock: &UnixStream) -> Vec<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; the buffers outlive the call, and the
    // kernel's control message is walked with the CMSG macros in bounds.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        assert_eq!(
            libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC),
            1,
            "the uid-switched child failed"
        );
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        assert!(!cmsg.is_null());
        let data = libc::CMSG_DATA(cmsg).cast::<i32>();
        (0..2)
            .map(|i| OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))))
            .collect()
    }
}

#[test]
fn another_users_sandbox_is_neither_listed_nor_stoppable() {
    let (mut owner, helper, id) = launch(&["/usr/bin/sleep", "60"], false);
    let record = records().join(id.as_str());
    assert!(record.exists(), "a running sandbox has a record");

    let (mut sock, child, _peer) = connect_as(65534);
    assert_eq!(
        request(&mut sock, Message::List),
        Some(Message::Sandboxes(vec![]))
    );
    finished_cleanly(child);

    let (mut sock, child, _peer) = connect_as(65534);
    let stop = Message::Stop {
        id: id.clone(),
        signal: StopSignal::Kill,
    };
    match request(&mut sock, stop.clone()) {
        Some(Message::Error { code, message }) => {
            assert_eq!(code, ErrorCode::Unauthorized, "{message}");
            assert!(message.contains("belongs to uid 0"), "{message}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    finished_cleanly(child);

    // Its owner (root) sees it, and may stop it.
    let (mut sock, child) = connect();
    match request(&mut sock, Message::List) {
        Some(Message::Sandboxes(list)) => assert!(list.iter().any(|s| s.id == id && s.uid == 0)),
        other => panic!("expected Sandboxes, got {other:?}"),
    }
    finished_cleanly(child);
    let (mut sock, child) = connect();
    assert_eq!(request(&mut sock, stop), Some(Message::Stopped));
    finished_cleanly(child);
    expect_exit(&mut owner, helper, ExitStatus::Signal(9));
    assert!(!record.exists());

    let audit = std::fs::read_to_string(state_root().join("log/nucleus/audit.log")).unwrap();
    let stop_lines: Vec<&str> = audit
        .lines()
        .filter(|l| l.contains(&format!("action=stop sandbox={id}")))
        .collect();
    assert!(
        stop_lines
            .iter()
            .any(|l| l.contains("uid=65534") && l.contains("decision=denied")),
        "{audit}"
    );
    assert!(
        stop_lines
            .iter()
            .any(|l| l.contains("uid=0") && l.contains("decision=allowed")),
        "{audit}"
    );
}

#[test]
fn a_tampered_record_is_refused() {
    let (owner, helper, id) = launch(&["/usr/bin/sleep", "60"], false);
    let record = records().join(id.as_str());
    let text = std::fs::read_to_string(&record).unwrap();
    // Claim the sandbox for uid 65534, who could then stop it.
    std::fs::write(&record, text.replace("uid=0\n", "uid=65534\n")).unwrap();
    let (mut sock, child, _peer) = connect_as(65534);
    match request(
        &mut sock,
        Message::Stop {
            id: id.clone(),
            signal: StopSignal::Kill,
        },
    ) {
        // The helper checks every record when it starts: this one is moved
        // aside, so for the request it does not exist.
        Some(Message::Error { code, message }) => {
            assert_eq!(code, ErrorCode::NotFound, "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    finished_cleanly(child);
    let aside = records().join(format!("{id}.tampered"));
    assert!(
        aside.exists() && !record.exists(),
        "moved aside for an administrator"
    );
    let audit = std::fs::read_to_string(state_root().join("log/nucleus/audit.log")).unwrap();
    assert!(
        audit.lines().any(|l| l
            .contains(&format!("action=reconcile sandbox={id} decision=refused"))
            && l.contains("HMAC")),
        "{audit}"
    );
    // The sandbox still runs; its own client ends it.
    drop(owner);
    finished_cleanly(helper);
    std::fs::remove_file(aside).unwrap();
}

#[test]
fn a_dead_helpers_sandbox_is_reconciled_by_the_next() {
    let (_owner, mut helper, id) = launch(&["/usr/bin/sleep", "60"], false);
    let record = records().join(id.as_str());
    let text = std::fs::read_to_string(&record).unwrap();
    let workload: libc::pid_t = text
        .lines()
        .find_map(|l| l.strip_prefix("workload="))
        .and_then(|w| w.split(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    // SIGKILL: no chance to clean up (the sandbox dies with it: its
    // parent-death signal).
    helper.kill().unwrap();
    helper.wait().unwrap();

    let (mut sock, child) = connect();
    assert!(
        matches!(request(&mut sock, Message::List), Some(Message::Sandboxes(l)) if l.iter().all(|s| s.id != id))
    );
    finished_cleanly(child);
    assert!(!record.exists(), "the stale record is removed");
    // Reaped by whoever inherited it; gone from the process table or a zombie.
    let state = std::fs::read_to_string(format!("/proc/{workload}/stat")).unwrap_or_default();
    assert!(state.is_empty() || state.contains(") Z"), "{state}");
}

#[test]
fn ids_outside_the_callers_own_and_subordinate_ranges_are_refused() {
    // uid 65534 has no /etc/subuid range: a plan mapping one is refused.
    let mut plan = sample_plan();
    plan.ids.uid_map = vec![
        IdMap::new(0, 65534, 1).unwrap(),
        IdMap::new(1, 3_000_000, 10).unwrap(),
    ];
    plan.ids.gid_map = vec![IdMap::new(0, 65534, 1).unwrap()];
    let (answer, _sock, child, _peer) = launch_plan_as(65534, &plan);
    expect_refusal(answer, ErrorCode::Unauthorized, "subuid");
    finished_cleanly(child);
}

/// A descriptor is all the helper mounts, and it grants the sandbox no
/// more than the sandbox's own ids allow: a root-only directory, opened by
/// a root caller for a sandbox that runs as uid 1000, stays unreadable
/// inside (the kernel sees an unmapped owner, not the descriptor's opener).
#[test]
fn a_descriptor_grants_no_more_than_the_sandbox_ids_allow() {
    let dir = state_root().join("root-only");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), "s3cret").unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut plan = sample_plan();
    plan.mounts.push(Mount::Bind {
        source: AbsPath::try_from(dir.to_str().unwrap()).unwrap(),
        target: AbsPath::try_from("/mnt").unwrap(),
        read_only: true,
    });
    with_libraries(&mut plan);
    plan.process.argv = Argv::try_from(vec![
        Arg::try_from("/usr/bin/cat").unwrap(),
        Arg::try_from("/mnt/secret").unwrap(),
    ])
    .unwrap();
    let (bytes, digest) = launch_bytes(&plan);
    let (mut sock, child) = connect();
    hello(&mut sock);
    let (usr, root_only) = (open_dir("/usr"), open_dir(dir.to_str().unwrap()));
    let (out_read, out_write) = UnixStream::pair().unwrap();
    let stdin = File::open("/dev/null").unwrap();
    send_fds(
        &sock,
        &frame(Message::Launch {
            plan: bytes,
            digest,
        }),
        &[
            usr.as_fd(),
            root_only.as_fd(),
            stdin.as_fd(),
            out_write.as_fd(),
            out_write.as_fd(),
            mount_ns().as_fd(),
        ],
    );
    drop(out_write);
    assert!(matches!(reply(&mut sock), Some(Message::Started { .. })));
    expect_exit(&mut sock, child, ExitStatus::Code(1));
    let mut out = String::new();
    (&out_read).read_to_string(&mut out).unwrap();
    assert!(
        out.contains("Permission denied") && !out.contains("s3cret"),
        "{out}"
    );
}

/// The allowed and the denied user of tests/host-polkit/run, which starts
/// a system bus and polkitd in a private mount namespace and runs the
/// `polkit_` tests; None (said loudly) elsewhere.
fn polkit_users() -> Option<(u32, u32)> {
    if std::env::var_os("NUCLEUS_POLKIT_HOST").is_none() {
        eprintln!("SKIPPED: polkit tests need tests/host-polkit/run (a system bus and polkitd)");
        assert!(
            std::env::var_os("NUCLEUS_REQUIRE_ALL").is_none(),
            "NUCLEUS_REQUIRE_ALL=1: run the polkit_ tests through tests/host-polkit/run"
        );
        return None;
    }
    let uid = |var: &str| {
        let name = std::env::var(var).unwrap();
        let out = Command::new("id").args(["-u", &name]).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    Some((uid("NUCLEUS_POLKIT_ALLOWED"), uid("NUCLEUS_POLKIT_DENIED")))
}

/// Launches /usr/bin/true named `name` as `uid` (its gid is the same
/// number, see `connect_as`); the helper's first answer.
fn launch_as(uid: u32, name: &str) -> (Option<Message>, UnixStream, Child, Peer) {
    let mut plan = sample_plan();
    with_libraries(&mut plan);
    plan.name = Some(SandboxName::try_from(name).unwrap());
    plan.ids.uid_map = vec![IdMap::new(0, uid, 1).unwrap()];
    plan.ids.gid_map = vec![IdMap::new(0, uid, 1).unwrap()];
    launch_plan_as(uid, &plan)
}

/// Launches `plan` (binding /usr) from a peer running as `uid`; the
/// helper's first answer.
fn launch_plan_as(uid: u32, plan: &Plan) -> (Option<Message>, UnixStream, Child, Peer) {
    let (bytes, digest) = launch_bytes(plan);
    let (mut sock, child, peer) = connect_as(uid);
    hello(&mut sock);
    let usr = open_dir("/usr");
    send_launch(&sock, bytes, digest, &[usr.as_fd()]);
    (reply(&mut sock), sock, child, peer)
}

fn expect_polkit_refusal(answer: Option<Message>, action: &str) {
    expect_refusal(
        answer,
        ErrorCode::Unauthorized,
        &format!("polkit does not allow {action}"),
    );
}

#[test]
fn polkit_allows_whom_the_rules_allow() {
    let Some((allowed, _)) = polkit_users() else {
        return;
    };
    let (answer, mut sock, child, _peer) = launch_as(allowed, "polkit-allowed");
    assert!(
        matches!(answer, Some(Message::Started { .. })),
        "{answer:?}"
    );
    expect_exit(&mut sock, child, ExitStatus::Code(0));
}

#[test]
fn polkit_denies_whom_the_rules_deny() {
    let Some((_, denied)) = polkit_users() else {
        return;
    };
    let (answer, _sock, child, _peer) = launch_as(denied, "polkit-denied");
    expect_polkit_refusal(answer, "org.nucleus.run");
    finished_cleanly(child);
}

#[test]
fn polkit_rules_see_the_sandbox_name() {
    let Some((allowed, _)) = polkit_users() else {
        return;
    };
    let (answer, _sock, child, _peer) = launch_as(allowed, "polkit-denied-by-detail");
    expect_polkit_refusal(answer, "org.nucleus.run");
    finished_cleanly(child);
}

#[test]
fn polkit_guards_other_users_sandboxes() {
    let Some((allowed, _)) = polkit_users() else {
        return;
    };
    let (mut owner, helper, id) = launch(&["/usr/bin/sleep", "60"], false);
    let (mut sock, child, _peer) = connect_as(allowed);
    let answer = request(
        &mut sock,
        Message::Stop {
            id,
            signal: StopSignal::Kill,
        },
    );
    expect_polkit_refusal(answer, "org.nucleus.manage-others");
    finished_cleanly(child);
    owner
        .write_all(&frame(Message::Signal(libc::SIGTERM as u8)))
        .unwrap();
    drop(owner);
    finished_cleanly(helper);
}

#[test]
fn an_unprivileged_caller_gets_only_the_default_bridge() {
    let mut plan = sample_plan();
    plan.ids.uid_map = vec![IdMap::new(0, 65534, 1).unwrap()];
    plan.ids.gid_map = vec![IdMap::new(0, 65534, 1).unwrap()];
    plan.network = NetworkMode::Bridge(Bridge {
        backend: NatBackend::Kernel(KernelBridge {
            name: BridgeName::try_from("eth0".to_owned()).unwrap(),
            subnet: Ipv4Subnet::try_from(KernelBridge::DEFAULT_SUBNET).unwrap(),
        }),
        egress: None,
        publish: Vec::new(),
    });
    let (answer, _sock, child, _peer) = launch_plan_as(65534, &plan);
    expect_refusal(
        answer,
        ErrorCode::Unauthorized,
        "other bridges and subnets need root",
    );
    finished_cleanly(child);
}

#[test]
fn a_userspace_nat_never_runs_in_the_helper() {
    let mut plan = sample_plan();
    plan.ids.uid_map = vec![IdMap::new(0, 65534, 1).unwrap()];
    plan.ids.gid_map = vec![IdMap::new(0, 65534, 1).unwrap()];
    plan.network = NetworkMode::Bridge(Bridge {
        backend: NatBackend::Pasta,
        egress: None,
        publish: Vec::new(),
    });
    let (answer, _sock, child, _peer) = launch_plan_as(65534, &plan);
    expect_refusal(answer, ErrorCode::BadRequest, "runs as the caller");
    finished_cleanly(child);
}

/// Mount points at or under `dir` in this test's mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn sh(cmd: &str) {
    let ok = Command::new("sh").args(["-c", cmd]).status().unwrap();
    assert!(ok.success(), "{cmd}");
}

/// A root directory on a shared tmpfs of this test's namespace, with the
/// directories the sandbox mounts on. Unmounted when dropped.
struct SharedRoot(PathBuf);

impl SharedRoot {
    fn new(label: &str) -> SharedRoot {
        let dir = state_root().join(label);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        sh(&format!(
            "mount -t tmpfs tmpfs {d} && mount --make-shared {d} && mkdir {d}/usr {d}/proc {d}/dev {d}/sys {d}/tmp"
        ));
        SharedRoot(dir)
    }

    fn plan(&self, argv: &[&str]) -> Plan {
        let mut plan = sample_plan();
        plan.root.source =
            RootSource::Directory(AbsPath::try_from(self.0.to_str().unwrap()).unwrap());
        plan.process.argv = Argv::try_from(
            argv.iter()
                .map(|a| Arg::try_from(*a).unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        with_libraries(&mut plan);
        plan
    }

    fn run(&self, plan: &Plan) -> ExitStatus {
        let (bytes, digest) = launch_bytes(plan);
        let (mut sock, child) = connect();
        hello(&mut sock);
        let (root, usr) = (open_dir(self.0.to_str().unwrap()), open_dir("/usr"));
        send_launch(&sock, bytes, digest, &[root.as_fd(), usr.as_fd()]);
        assert!(
            matches!(reply(&mut sock), Some(Message::Started { .. })),
            "the sandbox starts"
        );
        let Some(Message::Exited(status)) = reply(&mut sock) else {
            panic!("no exit status")
        };
        finished_cleanly(child);
        status
    }
}

impl Drop for SharedRoot {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg(&self.0).status();
    }
}

#[test]
fn a_sandboxs_mounts_never_reach_the_callers_namespace() {
    // The caller's trees are cloned in the caller's namespace; a clone of
    // a shared mount would be its peer, and the sandbox's /proc, /dev and
    // /sys would appear in the caller's tree (they did, before the clones
    // were made private).
    let root = SharedRoot::new("shared-root");
    let before = mounts_under(&root.0);
    let status = root.run(&root.plan(&["/usr/bin/true"]));
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(mounts_under(&root.0), before);
}

#[test]
fn hidden_pids_mount_proc_with_hidepid() {
    let root = SharedRoot::new("hidepid-root");
    let check = [
        "/usr/bin/grep",
        "-qE",
        "hidepid=(2|invisible)",
        "/proc/self/mountinfo",
    ];
    let mut plan = root.plan(&check);
    assert_eq!(root.run(&plan), ExitStatus::Code(1), "not without it");
    plan.hardening.hide_pids = true;
    assert_eq!(root.run(&plan), ExitStatus::Code(0));
}

#[test]
fn trace_mode_never_runs_in_the_helper() {
    let mut plan = sample_plan();
    plan.ids.uid_map = vec![IdMap::new(0, 65534, 1).unwrap()];
    plan.ids.gid_map = vec![IdMap::new(0, 65534, 1).unwrap()];
    plan.security.seccomp_mode = SeccompMode::Trace;
    let (answer, _sock, child, _peer) = launch_plan_as(65534, &plan);
    expect_refusal(answer, ErrorCode::BadRequest, "runs in-process only");
    finished_cleanly(child);
}

/// `--violations` through the helper: its executor answers the denied
/// call with the plan's errno and writes the report to the caller's file.
#[test]
fn violations_are_reported_to_the_callers_file() {
    const LD_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let insn = |code, jt, jf, k| SockFilter { code, jt, jf, k };
    let mut plan = sample_plan();
    // x86_64 only; ptrace fails with EACCES (13), the rest is allowed.
    plan.security.seccomp = SeccompProgram::try_from(vec![
        insn(LD_ABS, 0, 0, 4),
        insn(JEQ_K, 1, 0, 0xc000_003e),
        insn(RET_K, 0, 0, 0x8000_0000),
        insn(LD_ABS, 0, 0, 0),
        insn(JEQ_K, 0, 1, 101),
        insn(RET_K, 0, 0, 0x0005_0000 | 13),
        insn(RET_K, 0, 0, 0x7fff_0000),
    ])
    .unwrap();
    plan.security.seccomp_mode = SeccompMode::Report;
    plan.process.argv = Argv::try_from(
        [
            "/usr/bin/python3",
            "-c",
            "import ctypes, sys; l = ctypes.CDLL(None, use_errno=True); \
             l.syscall(101, 0, 0, 0, 0); sys.exit(ctypes.get_errno())",
        ]
        .map(|a| Arg::try_from(a).unwrap())
        .to_vec(),
    )
    .unwrap();
    with_libraries(&mut plan);
    let report = state_root().join(format!("violations-{}", std::process::id()));
    let file = File::create(&report).unwrap();
    let (bytes, digest) = launch_bytes(&plan);
    let (mut sock, child) = connect();
    hello(&mut sock);
    let usr = open_dir("/usr");
    let mut fds = with_stdio(&[usr.as_fd()]);
    fds.insert(fds.len() - 1, file.as_fd());
    send_fds(
        &sock,
        &frame(Message::Launch {
            plan: bytes,
            digest,
        }),
        &fds,
    );
    assert!(matches!(reply(&mut sock), Some(Message::Started { .. })));
    expect_exit(&mut sock, child, ExitStatus::Code(13));
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "{\"kind\":\"seccomp\",\"syscall\":\"ptrace\",\"nr\":101,\"arch\":\"x86_64\",\"errno\":13}\n"
    );
}
