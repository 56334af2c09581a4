//! Which destinations a sandbox's egress rules denied, read back from the
//! kernel over nfnetlink_log. The LOG target writes nothing from a network
//! namespace other than the host's (`net.netfilter.nf_log_all_netns=0`), so
//! the egress chain also sends each denied packet's first bytes to an NFLOG
//! group, and a [`Reader`] opened inside the sandbox's namespace receives
//! them. Building the config messages and parsing the packets are pure
//! functions; the socket calls are in `sys`.
//!
//! The packets come from the kernel but describe what the workload sent:
//! the parser trusts no length and skips whatever it cannot read.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::sys;

/// The NFLOG group the egress chain logs to. Groups are per network
/// namespace and the reader binds it in the sandbox's own, so no host
/// logger (ulogd, another sandbox) can hold it already or see the packets;
/// any value would do.
pub const GROUP: u16 = 7;

/// Bytes of each denied packet copied to the reader: an IPv4 header with
/// the longest options (60) or an IPv6 header (40), plus the first four
/// bytes of TCP or UDP, which hold the ports. Only the headers are
/// needed, and at most a few dozen bytes of the workload's data are
/// copied along.
const COPY_RANGE: u16 = 64;

/// The iptables target that reports a packet to [`GROUP`], for the rule
/// just before the chain's DROP: `-j NFLOG --nflog-group 7 --nflog-size 64`.
/// `--nflog-size`, not `--nflog-range`, which iptables 1.8.9 drops with a
/// warning (the kernel never honoured it).
pub fn rule_target() -> String {
    format!("-j NFLOG --nflog-group {GROUP} --nflog-size {COPY_RANGE}")
}

// linux/netlink.h
const NLMSG_HDRLEN: usize = 16;
const NLA_HDRLEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
/// nla_type's top bits are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK: u16 = 0x3fff;

// linux/netfilter/nfnetlink.h: struct nfgenmsg is family, version, res_id.
const NFGENMSG_LEN: usize = 4;
const NFNETLINK_V0: u8 = 0;
const NFNL_SUBSYS_ULOG: u16 = 4;

// linux/netfilter/nfnetlink_log.h
const NFULNL_MSG_PACKET: u16 = NFNL_SUBSYS_ULOG << 8;
const NFULNL_MSG_CONFIG: u16 = (NFNL_SUBSYS_ULOG << 8) | 1;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

/// How long `open` waits for the kernel's answer to a config message.
/// The kernel answers while handling the send, so this only bounds a bug.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// One read drains at most this many datagrams, so a workload flooding
/// denied destinations cannot keep the caller's event loop here; the
/// descriptor stays readable while more are queued.
const MAX_DATAGRAMS_PER_READ: usize = 256;

/// Larger than any datagram nfnetlink_log sends with the default buffer
/// size (NLMSG_GOODSIZE, at most 8 KiB).
const RECV_BUF: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    /// ICMP for IPv4, ICMPv6 for IPv6.
    Icmp,
    /// The IP protocol number, or for IPv6 the first next-header value
    /// (extension headers are not walked).
    Other(u8),
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proto::Tcp => f.write_str("tcp"),
            Proto::Udp => f.write_str("udp"),
            Proto::Icmp => f.write_str("icmp"),
            Proto::Other(n) => write!(f, "proto-{n}"),
        }
    }
}

/// A packet the egress rules dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Denied {
    pub proto: Proto,
    pub dst: IpAddr,
    /// The destination port, for TCP and UDP when the copy reached it.
    pub port: Option<u16>,
}

/// `tcp 192.0.2.7:443`, `tcp [2001:db8::1]:443`, `icmp 192.0.2.7`.
impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{} {}", self.proto, SocketAddr::new(self.dst, port)),
            None => write!(f, "{} {}", self.proto, self.dst),
        }
    }
}

/// An nfnetlink_log socket bound to one group, in the network namespace
/// the opening thread was in.
#[derive(Debug)]
pub struct Reader {
    fd: OwnedFd,
}

impl Reader {
    /// Opens a socket in the calling thread's network namespace and binds
    /// `group` there, copying the first 64 bytes of each packet. Needs
    /// CAP_NET_ADMIN over that namespace; EPERM too if another socket
    /// holds the group. Call it before the workload runs: packets that
    /// arrive while it waits for the kernel's answer are not kept.
    pub fn open(group: u16) -> io::Result<Reader> {
        let reader = Reader {
            fd: sys::netlink_socket(libc::NETLINK_NETFILTER)?,
        };
        let seq = 1;
        sys::netlink_send(reader.fd.as_fd(), &bind_message(group, seq))?;
        reader.await_ack(seq)?;
        Ok(reader)
    }

    fn await_ack(&self, seq: u32) -> io::Result<()> {
        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            }
            let mut fds = [libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&self.fd),
                events: libc::POLLIN,
                revents: 0,
            }];
            let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
            if sys::poll(&mut fds, ms.max(1))? == 0 {
                continue;
            }
            let n = match sys::recv_nonblocking(self.fd.as_fd(), &mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => other?,
            };
            if let Some(code) = ack(buf.get(..n).unwrap_or_default(), seq) {
                return match code {
                    0 => Ok(()),
                    code => Err(io::Error::from_raw_os_error(code.saturating_neg())),
                };
            }
        }
    }

    /// The denied packets reported since the last read, without blocking
    /// (empty when none are queued). A packet dropped twice (a TCP SYN and
    /// its retransmission) is reported twice.
    pub fn read(&self) -> io::Result<Vec<Denied>> {
        let mut buf = vec![0u8; RECV_BUF];
        let mut denied = Vec::new();
        for _ in 0..MAX_DATAGRAMS_PER_READ {
            match sys::recv_nonblocking(self.fd.as_fd(), &mut buf) {
                Ok(n) => denied.extend(parse(buf.get(..n).unwrap_or_default())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // The socket's receive queue overflowed and the kernel
                // dropped reports; the socket still works, so a partial
                // report is better than none.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    tracing::warn!("some denied packets were not reported: receive queue full");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(denied)
    }
}

/// The socket of a reader opened in another process (the sandbox opens
/// it in its own namespace and hands it over to the executor).
impl From<OwnedFd> for Reader {
    fn from(fd: OwnedFd) -> Reader {
        Reader { fd }
    }
}

impl AsFd for Reader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A netlink attribute, padded to 4 bytes. Payloads here are a few bytes,
/// so the length always fits.
fn attribute(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = (NLA_HDRLEN + payload.len()) as u16;
    let mut a = Vec::with_capacity(align4(usize::from(len)));
    a.extend(len.to_ne_bytes());
    a.extend(kind.to_ne_bytes());
    a.extend(payload);
    a.resize(align4(a.len()), 0);
    a
}

/// A netlink message: host-endian header, then `body`.
fn message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + body.len()) as u32;
    let mut m = Vec::with_capacity(align4(len as usize));
    m.extend(len.to_ne_bytes());
    m.extend(kind.to_ne_bytes());
    m.extend(flags.to_ne_bytes());
    m.extend(seq.to_ne_bytes());
    // The sender's port id: the kernel takes it from the socket instead.
    m.extend(0u32.to_ne_bytes());
    m.extend(body);
    m.resize(align4(m.len()), 0);
    m
}

/// The config message that binds `group` to the sending socket, copying
/// packets up to [`COPY_RANGE`] bytes and sending each one at once.
///
/// One group serves IPv4 and IPv6 alike: the NFLOG target hands packets
/// to nfnetlink_log for every family, so no per-family PF_BIND is needed
/// (that only picks the namespace's default logger, which NFLOG bypasses),
/// and the family byte of a BIND is ignored (AF_UNSPEC here).
///
/// The queue threshold of 1 matters: by default the kernel batches up to
/// 100 packets for up to a second, and a workload that fails fast and
/// exits would leave its last denials unread.
fn bind_message(group: u16, seq: u32) -> Vec<u8> {
    let mut body = vec![libc::AF_UNSPEC as u8, NFNETLINK_V0];
    body.extend(group.to_be_bytes());
    body.extend(attribute(NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]));
    // struct nfulnl_msg_config_mode: __be32 copy_range, u8 copy_mode, u8 pad.
    let mut mode = u32::from(COPY_RANGE).to_be_bytes().to_vec();
    mode.extend([NFULNL_COPY_PACKET, 0]);
    body.extend(attribute(NFULA_CFG_MODE, &mode));
    body.extend(attribute(NFULA_CFG_QTHRESH, &1u32.to_be_bytes()));
    message(NFULNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, &body)
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

struct Message<'a> {
    kind: u16,
    seq: u32,
    body: &'a [u8],
}

/// The netlink messages in a datagram, up to the first malformed one.
fn messages(datagram: &[u8]) -> impl Iterator<Item = Message<'_>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        let h: &[u8; NLMSG_HDRLEN] = rest.get(..NLMSG_HDRLEN)?.try_into().ok()?;
        let len = usize::try_from(u32::from_ne_bytes([h[0], h[1], h[2], h[3]])).ok()?;
        // None when `len` is shorter than the header or past the end.
        let body = rest.get(NLMSG_HDRLEN..len)?;
        let message = Message {
            kind: u16::from_ne_bytes([h[4], h[5]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            body,
        };
        // The last message may come without its padding.
        rest = rest.get(align4(len)..).unwrap_or_default();
        Some(message)
    })
}

/// The (type, payload) netlink attributes in `bytes`, up to the first
/// malformed one.
fn attributes(bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let h: &[u8; NLA_HDRLEN] = rest.get(..NLA_HDRLEN)?.try_into().ok()?;
        let len = usize::from(u16::from_ne_bytes([h[0], h[1]]));
        let payload = rest.get(NLA_HDRLEN..len)?;
        let kind = u16::from_ne_bytes([h[2], h[3]]) & NLA_TYPE_MASK;
        rest = rest.get(align4(len)..).unwrap_or_default();
        Some((kind, payload))
    })
}

/// The error code (0 for success, else a negative errno) of the kernel's
/// answer to request `seq`, if the datagram holds it.
fn ack(datagram: &[u8], seq: u32) -> Option<i32> {
    messages(datagram)
        .filter(|m| m.kind == NLMSG_ERROR && m.seq == seq)
        .find_map(|m| {
            let code: [u8; 4] = m.body.get(..4)?.try_into().ok()?;
            Some(i32::from_ne_bytes(code))
        })
}

/// The denied packets reported in one datagram from an nfnetlink_log
/// socket. Anything else (acks, NLMSG_DONE, malformed messages, packets
/// that are not IP) is skipped.
pub fn parse(datagram: &[u8]) -> Vec<Denied> {
    messages(datagram)
        .filter(|m| m.kind == NFULNL_MSG_PACKET)
        .filter_map(|m| {
            let (_, payload) =
                attributes(m.body.get(NFGENMSG_LEN..)?).find(|(kind, _)| *kind == NFULA_PAYLOAD)?;
            ip_packet(payload)
        })
        .collect()
}

/// What the IP header at the start of `packet` says; None when even the
/// fixed header is cut short.
fn ip_packet(packet: &[u8]) -> Option<Denied> {
    match packet.first()? >> 4 {
        4 => ipv4(packet),
        6 => ipv6(packet),
        _ => None,
    }
}

fn ipv4(packet: &[u8]) -> Option<Denied> {
    let h: &[u8; 20] = packet.get(..20)?.try_into().ok()?;
    let header_len = usize::from(h[0] & 0x0f) * 4;
    if header_len < 20 {
        return None;
    }
    let proto = match h[9] {
        IPPROTO_TCP => Proto::Tcp,
        IPPROTO_UDP => Proto::Udp,
        IPPROTO_ICMP => Proto::Icmp,
        n => Proto::Other(n),
    };
    // Only the first fragment carries the transport header.
    let first_fragment = u16::from_be_bytes([h[6], h[7]]) & 0x1fff == 0;
    let port = match packet.get(header_len..) {
        Some(transport) if first_fragment => dst_port(proto, transport),
        _ => None,
    };
    let dst = IpAddr::V4(Ipv4Addr::new(h[16], h[17], h[18], h[19]));
    Some(Denied { proto, dst, port })
}

fn ipv6(packet: &[u8]) -> Option<Denied> {
    let h: &[u8; 40] = packet.get(..40)?.try_into().ok()?;
    let proto = match h[6] {
        IPPROTO_TCP => Proto::Tcp,
        IPPROTO_UDP => Proto::Udp,
        IPPROTO_ICMPV6 => Proto::Icmp,
        n => Proto::Other(n),
    };
    let dst: [u8; 16] = h.get(24..40)?.try_into().ok()?;
    let port = packet.get(40..).and_then(|t| dst_port(proto, t));
    Some(Denied {
        proto,
        dst: IpAddr::V6(Ipv6Addr::from(dst)),
        port,
    })
}

/// TCP's and UDP's destination port is bytes 2..4 of their header.
fn dst_port(proto: Proto, transport: &[u8]) -> Option<u16> {
    match proto {
        Proto::Tcp | Proto::Udp => {
            let t: &[u8; 4] = transport.get(..4)?.try_into().ok()?;
            Some(u16::from_be_bytes([t[2], t[3]]))
        }
        Proto::Icmp | Proto::Other(_) => None,
    }
}

#[cfg(test)]
mod tests;
