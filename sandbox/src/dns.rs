//! A minimal stub resolver for `--egress-allow DOMAIN`: asks the configured
//! resolvers for a name's A and AAAA records over UDP and returns the
//! addresses with their TTLs, so the caller can put addresses (never names)
//! into firewall rules and re-resolve before the TTL runs out.
//! getaddrinfo gives no TTL, and the binaries are static, so the queries are
//! built and parsed here.
//!
//! Answers are untrusted network input read by a process that may run as
//! root: every read is bounds-checked, compression pointers must point
//! backwards (so a walk always ends), and CNAME chains are cut after 8
//! hops. Nothing here panics on any input.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub use protocol::Domain;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const RCODE_NXDOMAIN: u16 = 3;

/// An uncompressed name, root label included (RFC 1035 §2.3.4).
const MAX_WIRE_NAME: usize = 255;
/// The longest CNAME chain followed inside one answer.
const MAX_CNAME_HOPS: usize = 8;

/// The name in wire format (length-prefixed labels, root label last).
fn wire(name: &Domain) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.as_str().len() + 2);
    for label in name.as_str().split('.') {
        // At most 63: checked when the domain was parsed.
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// One resolved address and how long it may be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub addr: IpAddr,
    /// Seconds: the smallest TTL along the CNAME chain that led here.
    pub ttl: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{domain}: no DNS servers to ask; configure a resolver")]
    NoServers { domain: Domain },
    #[error("{domain}: no such domain (NXDOMAIN from {server}); check the spelling")]
    NoSuchDomain { domain: Domain, server: IpAddr },
    #[error("{domain}: no A or AAAA records (answer from {server}); allow its addresses instead")]
    NoAddresses { domain: Domain, server: IpAddr },
    #[error("{domain}: the answer from {server} was truncated and DNS over TCP is not supported; allow its addresses instead")]
    Truncated { domain: Domain, server: IpAddr },
    #[error("{domain}: CNAME chain longer than {MAX_CNAME_HOPS} (answer from {server}); allow its addresses instead")]
    CnameChain { domain: Domain, server: IpAddr },
    #[error("{domain}: {server} {why}; check the resolver or configure another")]
    ServerFailed {
        domain: Domain,
        server: IpAddr,
        why: String,
    },
    #[error("{domain}: cannot query {server}")]
    Io {
        domain: Domain,
        server: IpAddr,
        #[source]
        source: io::Error,
    },
    #[error("{domain}: no resolver answered within {timeout:?} (tried {}); check the network and the resolvers", list(.tried))]
    Timeout {
        domain: Domain,
        timeout: Duration,
        tried: Vec<IpAddr>,
    },
}

fn list(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves `name`'s A and AAAA records by asking `servers` (port 53, in
/// order until one answers), each with `timeout`. CNAME chains inside an
/// answer are followed; each address carries the smallest TTL along its
/// chain. A server that fails (SERVFAIL, REFUSED, a malformed answer, no
/// answer) is skipped; NXDOMAIN, no addresses or a truncated answer end the
/// lookup, since another resolver would say the same.
pub fn resolve(
    name: &Domain,
    servers: &[IpAddr],
    timeout: Duration,
) -> Result<Vec<Answer>, DnsError> {
    let servers: Vec<SocketAddr> = servers.iter().map(|ip| SocketAddr::new(*ip, 53)).collect();
    resolve_at(name, &servers, timeout)
}

fn resolve_at(
    name: &Domain,
    servers: &[SocketAddr],
    timeout: Duration,
) -> Result<Vec<Answer>, DnsError> {
    if servers.is_empty() {
        return Err(DnsError::NoServers {
            domain: name.clone(),
        });
    }
    let mut failure = None;
    for &server in servers {
        match ask(name, server, timeout) {
            Ok(answers) => return Ok(answers),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Server(e)) => {
                tracing::debug!(%server, error = %e, "resolver failed, trying the next");
                failure = Some(e);
            }
            Err(Failure::Silent) => {
                tracing::debug!(%server, domain = %name, "no answer from resolver");
            }
        }
    }
    Err(failure.unwrap_or_else(|| DnsError::Timeout {
        domain: name.clone(),
        timeout,
        tried: servers.iter().map(SocketAddr::ip).collect(),
    }))
}

/// How asking one server went wrong, which decides whether to ask the next.
enum Failure {
    /// An answer about the name itself: another server would say the same.
    Final(DnsError),
    /// This server is broken or unreachable.
    Server(DnsError),
    /// Nothing came back in time.
    Silent,
}

/// Asks `server` for both record types at once and waits for both answers.
fn ask(name: &Domain, server: SocketAddr, timeout: Duration) -> Result<Vec<Answer>, Failure> {
    let io = |source| {
        Failure::Server(DnsError::Io {
            domain: name.clone(),
            server: server.ip(),
            source,
        })
    };
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // Port 0: the kernel picks a random source port. Connecting makes the
    // kernel drop datagrams from any other address.
    let socket = UdpSocket::bind(local).map_err(io)?;
    socket.connect(server).map_err(io)?;
    let (id_a, id_aaaa) = query_ids();
    let mut pending = [(id_a, TYPE_A, None), (id_aaaa, TYPE_AAAA, None)];
    for (id, qtype, _) in &pending {
        socket.send(&query(*id, name, *qtype)).map_err(io)?;
    }
    let deadline = Instant::now() + timeout;
    // Without EDNS an answer over UDP is at most 512 bytes; more is cut
    // short and then fails to parse.
    let mut buf = [0u8; 4096];
    while pending.iter().any(|(_, _, got)| got.is_none()) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Silent);
        }
        socket.set_read_timeout(Some(left)).map_err(io)?;
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(io(e)),
        };
        let msg = buf.get(..len).unwrap_or_default();
        for (id, qtype, got) in pending.iter_mut().filter(|(_, _, got)| got.is_none()) {
            match parse(msg, *id, name, *qtype) {
                Ok(answers) => {
                    *got = Some(answers);
                    break;
                }
                // A late or forged datagram: keep waiting for ours.
                Err(Problem::NotOurs) => {}
                Err(problem) => return Err(failure(name, server.ip(), problem)),
            }
        }
    }
    let mut answers: Vec<Answer> = Vec::new();
    for answer in pending
        .into_iter()
        .flat_map(|(_, _, got)| got.unwrap_or_default())
    {
        match answers.iter_mut().find(|a| a.addr == answer.addr) {
            Some(seen) => seen.ttl = seen.ttl.min(answer.ttl),
            None => answers.push(answer),
        }
    }
    if answers.is_empty() {
        return Err(Failure::Final(DnsError::NoAddresses {
            domain: name.clone(),
            server: server.ip(),
        }));
    }
    Ok(answers)
}

fn failure(name: &Domain, server: IpAddr, problem: Problem) -> Failure {
    let domain = name.clone();
    let failed = |why: String| {
        Failure::Server(DnsError::ServerFailed {
            domain: name.clone(),
            server,
            why,
        })
    };
    match problem {
        Problem::NxDomain => Failure::Final(DnsError::NoSuchDomain { domain, server }),
        Problem::Truncated => Failure::Final(DnsError::Truncated { domain, server }),
        Problem::CnameChain => Failure::Final(DnsError::CnameChain { domain, server }),
        Problem::Rcode(2) => failed("answered SERVFAIL".to_owned()),
        Problem::Rcode(5) => failed("answered REFUSED".to_owned()),
        Problem::Rcode(code) => failed(format!("answered with error code {code}")),
        Problem::Malformed(why) => failed(format!("sent a malformed answer ({why})")),
        // ask() keeps waiting instead of failing on these.
        Problem::NotOurs => failed("sent an answer to another question".to_owned()),
    }
}

/// Two query ids no one off the path can guess: `RandomState` is seeded
/// from the kernel's random source, and each one hashes with new keys.
fn query_ids() -> (u16, u16) {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        .to_be_bytes();
    (
        u16::from_be_bytes([bits[0], bits[1]]),
        u16::from_be_bytes([bits[2], bits[3]]),
    )
}

/// A recursive query for one record type of `name`, class IN.
fn query(id: u16, name: &Domain, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + name.as_str().len() + 6);
    for field in [id, FLAG_RD, 1, 0, 0, 0] {
        q.extend_from_slice(&field.to_be_bytes());
    }
    q.extend_from_slice(&wire(name));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

/// Why an answer gave no addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    /// Not the answer to our question (other id or question, not a
    /// response, too short to tell): ignored.
    NotOurs,
    Truncated,
    NxDomain,
    /// Any other non-zero RCODE.
    Rcode(u16),
    Malformed(&'static str),
    CnameChain,
}

/// A record kept from the answer section, its owner in lowercase wire form.
struct Record {
    owner: Vec<u8>,
    ttl: u32,
    data: RecordData,
}

enum RecordData {
    Addr(IpAddr),
    Alias(Vec<u8>),
}

/// The addresses of type `qtype` that `resp` gives for `name`, following
/// CNAMEs in its answer section. An empty list is a valid answer (the name
/// has no records of that type).
fn parse(resp: &[u8], id: u16, name: &Domain, qtype: u16) -> Result<Vec<Answer>, Problem> {
    let mut r = Reader { msg: resp, pos: 0 };
    let mut field = || r.u16().ok_or(Problem::NotOurs);
    let (got_id, flags, qdcount, ancount) = (field()?, field()?, field()?, field()?);
    // The authority and additional sections are never read.
    r.take(4).ok_or(Problem::NotOurs)?;
    let opcode = (flags >> 11) & 0xf;
    if got_id != id || flags & FLAG_QR == 0 || opcode != 0 || qdcount != 1 {
        return Err(Problem::NotOurs);
    }
    let ours =
        r.name().ok() == Some(wire(name)) && r.u16() == Some(qtype) && r.u16() == Some(CLASS_IN);
    if !ours {
        return Err(Problem::NotOurs);
    }
    if flags & FLAG_TC != 0 {
        return Err(Problem::Truncated);
    }
    match flags & 0xf {
        0 => {}
        RCODE_NXDOMAIN => return Err(Problem::NxDomain),
        rcode => return Err(Problem::Rcode(rcode)),
    }
    let mut records = Vec::new();
    for _ in 0..ancount {
        if let Some(record) = r.record(qtype)? {
            records.push(record);
        }
    }
    follow(&records, wire(name))
}

/// The addresses at the end of the CNAME chain that starts at `owner`.
fn follow(records: &[Record], mut owner: Vec<u8>) -> Result<Vec<Answer>, Problem> {
    let mut chain_ttl = u32::MAX;
    for _ in 0..=MAX_CNAME_HOPS {
        let answers: Vec<Answer> = records
            .iter()
            .filter(|r| r.owner == owner)
            .filter_map(|r| match r.data {
                RecordData::Addr(addr) => Some(Answer {
                    addr,
                    ttl: r.ttl.min(chain_ttl),
                }),
                RecordData::Alias(_) => None,
            })
            .collect();
        if !answers.is_empty() {
            return Ok(answers);
        }
        let alias = records.iter().find_map(|r| match &r.data {
            RecordData::Alias(target) if r.owner == owner => Some((target, r.ttl)),
            _ => None,
        });
        match alias {
            Some((target, ttl)) => {
                owner = target.clone();
                chain_ttl = chain_ttl.min(ttl);
            }
            None => return Ok(Vec::new()),
        }
    }
    Err(Problem::CnameChain)
}

/// A bounds-checked cursor over a message.
struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.msg.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(bytes)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }

    fn name(&mut self) -> Result<Vec<u8>, Problem> {
        let (name, next) = read_name(self.msg, self.pos)?;
        self.pos = next;
        Ok(name)
    }

    /// One resource record; `None` for those of other classes or types,
    /// which are skipped.
    fn record(&mut self, qtype: u16) -> Result<Option<Record>, Problem> {
        let cut = Problem::Malformed("record cut short");
        let owner = self.name()?;
        let (rtype, class) = (self.u16().ok_or(cut)?, self.u16().ok_or(cut)?);
        // RFC 2181 §8: a TTL with the top bit set means zero.
        let ttl = self.u32().ok_or(cut)?;
        let ttl = if ttl & 0x8000_0000 != 0 { 0 } else { ttl };
        let rdlength = usize::from(self.u16().ok_or(cut)?);
        let rdata_at = self.pos;
        let rdata = self.take(rdlength).ok_or(cut)?;
        if class != CLASS_IN {
            return Ok(None);
        }
        let data = match rtype {
            TYPE_CNAME => {
                let (target, end) = read_name(self.msg, rdata_at)?;
                if end != self.pos {
                    return Err(Problem::Malformed("CNAME target does not fill its record"));
                }
                RecordData::Alias(target)
            }
            _ if rtype != qtype => return Ok(None),
            TYPE_A => RecordData::Addr(IpAddr::from(
                <[u8; 4]>::try_from(rdata)
                    .map_err(|_| Problem::Malformed("A record not 4 bytes"))?,
            )),
            TYPE_AAAA => RecordData::Addr(IpAddr::from(
                <[u8; 16]>::try_from(rdata)
                    .map_err(|_| Problem::Malformed("AAAA record not 16 bytes"))?,
            )),
            _ => return Ok(None),
        };
        Ok(Some(Record { owner, ttl, data }))
    }
}

/// Reads the possibly compressed name at `start`: returns it uncompressed,
/// in lowercase wire form, and the offset just past it in place.
fn read_name(msg: &[u8], start: usize) -> Result<(Vec<u8>, usize), Problem> {
    let cut = Problem::Malformed("name cut short");
    let mut name = Vec::new();
    let mut pos = start;
    // Each pointer must land before the previous landing point (or the
    // name's start), so every walk ends: a pointer into the part just read
    // could loop.
    let mut limit = start;
    let mut end = None;
    loop {
        let len = *msg.get(pos).ok_or(cut)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                name.push(0);
                return Ok((name, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let label = msg.get(pos + 1..pos + 1 + usize::from(len)).ok_or(cut)?;
                name.push(len);
                name.extend(label.iter().map(u8::to_ascii_lowercase));
                // The root label still has to fit.
                if name.len() >= MAX_WIRE_NAME {
                    return Err(Problem::Malformed("name longer than 255 bytes"));
                }
                pos += 1 + usize::from(len);
            }
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(cut)?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                if target >= limit {
                    return Err(Problem::Malformed(
                        "compression pointer does not point backwards",
                    ));
                }
                end.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            _ => return Err(Problem::Malformed("unknown label type")),
        }
    }
}

#[cfg(test)]
mod tests;
