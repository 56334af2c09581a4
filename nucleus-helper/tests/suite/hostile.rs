//! A hostile client against the real helper binary on a socket pair:
//! garbage, truncated, oversized and wrong-version frames, bad digests,
//! invalid plans, wrong descriptor counts and kinds. Each must end in a
//! typed error (or a clean close), never a panic, never a sandbox.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

use protocol::testing::sample_plan;
use protocol::*;

/// The helper as systemd would start it, with `sock` as its connection.
fn spawn_helper(sock: UnixStream) -> Child {
    let fd = sock.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\"",
        env!("CARGO_BIN_EXE_nucleus-helper"),
    ]);
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
    match reply(sock) {
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
    static NS: std::sync::OnceLock<File> = std::sync::OnceLock::new();
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
    send_fds(
        &sock,
        &frame(Message::Launch {
            plan: bytes,
            digest,
        }),
        &with_stdio(&[dir.as_fd()]),
    );
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

#[test]
fn a_terminal_plan_is_refused_as_unsupported() {
    let mut plan = sample_plan();
    plan.process.tty = true;
    let (bytes, digest) = launch_bytes(&plan);
    let (mut sock, child) = connect();
    hello(&mut sock);
    let usr = open_dir("/usr");
    send_fds(
        &sock,
        &frame(Message::Launch {
            plan: bytes,
            digest,
        }),
        &with_stdio(&[usr.as_fd()]),
    );
    expect_error(&mut sock, ErrorCode::Unsupported, "--rootless");
    finished_cleanly(child);
}
