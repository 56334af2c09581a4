use super::*;
use std::net::Ipv6Addr;
use std::thread;

const ID: u16 = 0xbeef;
const OK: u16 = 0x8180;
/// A pointer to the question's name, www.example.com, at offset 12.
const QNAME: [u8; 2] = [0xc0, 12];
/// A pointer to example.com inside it.
const PARENT: [u8; 2] = [0xc0, 16];

fn domain(s: &str) -> Domain {
    Domain::try_from(s.to_owned()).unwrap()
}

fn wire(s: &str) -> Vec<u8> {
    super::wire(&domain(s))
}

fn rr(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = owner.to_vec();
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&CLASS_IN.to_be_bytes());
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

/// A response to www.example.com's `qtype` question.
fn response(id: u16, flags: u16, qtype: u16, answers: &[Vec<u8>]) -> Vec<u8> {
    let count = u16::try_from(answers.len()).unwrap();
    let mut m = Vec::new();
    for field in [id, flags, 1, count, 0, 0] {
        m.extend_from_slice(&field.to_be_bytes());
    }
    m.extend_from_slice(&wire("www.example.com"));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    answers.iter().for_each(|a| m.extend_from_slice(a));
    m
}

fn parse_www(resp: &[u8], qtype: u16) -> Result<Vec<Answer>, Problem> {
    parse(resp, ID, &domain("www.example.com"), qtype)
}

fn answer(addr: &str, ttl: u32) -> Answer {
    Answer {
        addr: addr.parse().unwrap(),
        ttl,
    }
}

#[test]
fn query_is_one_recursive_in_question() {
    let mut want = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    want.extend_from_slice(b"\x07example\x03com\x00");
    want.extend_from_slice(&[0, 28, 0, 1]);
    assert_eq!(query(0x1234, &domain("Example.COM."), TYPE_AAAA), want);
}

#[test]
fn a_record_at_the_question_name() {
    let resp = response(ID, OK, TYPE_A, &[rr(&QNAME, TYPE_A, 300, &[192, 0, 2, 1])]);
    assert_eq!(parse_www(&resp, TYPE_A), Ok(vec![answer("192.0.2.1", 300)]));
}

#[test]
fn aaaa_records_skip_other_types_names_and_classes() {
    let v6 = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets();
    let mut chaos = rr(&QNAME, TYPE_AAAA, 5, &[0; 16]);
    chaos[4..6].copy_from_slice(&3u16.to_be_bytes());
    let resp = response(
        ID,
        OK,
        TYPE_AAAA,
        &[
            rr(&QNAME, TYPE_A, 300, &[192, 0, 2, 1]),
            rr(&wire("other.example.com"), TYPE_AAAA, 7, &[0xff; 16]),
            chaos,
            rr(&QNAME, 16, 9, b"\x03txt"),
            rr(&QNAME, TYPE_AAAA, 60, &v6),
        ],
    );
    assert_eq!(
        parse_www(&resp, TYPE_AAAA),
        Ok(vec![answer("2001:db8::1", 60)])
    );
}

#[test]
fn names_match_in_any_case() {
    let mut resp = response(ID, OK, TYPE_A, &[]);
    resp[13..16].copy_from_slice(b"WwW");
    let a = rr(&wire("www.example.com"), TYPE_A, 1, &[192, 0, 2, 1]);
    resp.extend(a.iter().map(u8::to_ascii_uppercase));
    resp[7] = 1;
    assert_eq!(parse_www(&resp, TYPE_A), Ok(vec![answer("192.0.2.1", 1)]));
}

#[test]
fn cname_chain_gives_the_smallest_ttl() {
    let resp = response(
        ID,
        OK,
        TYPE_A,
        &[
            rr(&QNAME, TYPE_CNAME, 100, &wire("a.example.net")),
            rr(&wire("b.example.net"), TYPE_A, 300, &[192, 0, 2, 7]),
            rr(
                &wire("a.example.net"),
                TYPE_CNAME,
                50,
                &wire("b.example.net"),
            ),
            rr(&wire("b.example.net"), TYPE_A, 20, &[192, 0, 2, 8]),
            // Not on the chain: ignored.
            rr(&wire("c.example.net"), TYPE_A, 1, &[192, 0, 2, 9]),
        ],
    );
    let want = vec![answer("192.0.2.7", 50), answer("192.0.2.8", 20)];
    assert_eq!(parse_www(&resp, TYPE_A), Ok(want));
}

#[test]
fn cname_chains_are_cut_after_eight_hops() {
    let chain = |hops: usize| {
        let name = |i: usize| wire(&format!("c{i}.example.net"));
        let mut rrs = vec![rr(&QNAME, TYPE_CNAME, 60, &name(1))];
        rrs.extend((1..hops).map(|i| rr(&name(i), TYPE_CNAME, 60, &name(i + 1))));
        rrs.push(rr(&name(hops), TYPE_A, 60, &[192, 0, 2, 1]));
        parse_www(&response(ID, OK, TYPE_A, &rrs), TYPE_A)
    };
    assert_eq!(chain(MAX_CNAME_HOPS), Ok(vec![answer("192.0.2.1", 60)]));
    assert_eq!(chain(MAX_CNAME_HOPS + 1), Err(Problem::CnameChain));
    let looped = response(
        ID,
        OK,
        TYPE_A,
        &[
            rr(&QNAME, TYPE_CNAME, 60, &wire("x.example.net")),
            rr(&wire("x.example.net"), TYPE_CNAME, 60, &QNAME),
        ],
    );
    assert_eq!(parse_www(&looped, TYPE_A), Err(Problem::CnameChain));
}

#[test]
fn chained_compression_pointers() {
    // cdn.example.com: a label, then a pointer into the question.
    let cname = rr(
        &QNAME,
        TYPE_CNAME,
        60,
        &[3, b'c', b'd', b'n', PARENT[0], PARENT[1]],
    );
    // The A record's owner points at the CNAME's data (33 + 12), which
    // points into the question.
    let resp = response(
        ID,
        OK,
        TYPE_A,
        &[cname, rr(&[0xc0, 45], TYPE_A, 90, &[192, 0, 2, 3])],
    );
    assert_eq!(read_name(&resp, 45).unwrap().0, wire("cdn.example.com"));
    assert_eq!(parse_www(&resp, TYPE_A), Ok(vec![answer("192.0.2.3", 60)]));
}

#[test]
fn pointer_loops_and_forward_pointers_are_refused() {
    let a = |owner: &[u8]| {
        let resp = response(ID, OK, TYPE_A, &[rr(owner, TYPE_A, 1, &[192, 0, 2, 1])]);
        parse_www(&resp, TYPE_A)
    };
    let bad = Err(Problem::Malformed(
        "compression pointer does not point backwards",
    ));
    // The answer starts at offset 33.
    assert_eq!(a(&[0xc0, 33]), bad, "to itself");
    assert_eq!(a(&[0xc0, 200]), bad, "forwards");
    assert_eq!(a(&[0xc0, 35, 0xc0, 33]), bad, "two-pointer cycle");
    assert_eq!(a(&[1, b'x', 0xc0, 34]), bad, "into its own labels");
    let unknown = Err(Problem::Malformed("unknown label type"));
    assert_eq!(a(&[0x40, 0]), unknown);
    // A question that cannot be read is not ours.
    let mut resp = response(ID, OK, TYPE_A, &[]);
    resp.truncate(12);
    resp.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(parse_www(&resp, TYPE_A), Err(Problem::NotOurs));
}

#[test]
fn long_names_are_refused() {
    let mut owner = Vec::new();
    for _ in 0..5 {
        owner.push(63);
        owner.extend_from_slice(&[b'a'; 63]);
    }
    owner.push(0);
    let resp = response(ID, OK, TYPE_A, &[rr(&owner, TYPE_A, 1, &[192, 0, 2, 1])]);
    let want = Err(Problem::Malformed("name longer than 255 bytes"));
    assert_eq!(parse_www(&resp, TYPE_A), want);
}

#[test]
fn every_cut_or_damaged_packet_is_an_error_or_harmless() {
    let resp = response(
        ID,
        OK,
        TYPE_A,
        &[
            rr(
                &QNAME,
                TYPE_CNAME,
                60,
                &[3, b'c', b'd', b'n', PARENT[0], PARENT[1]],
            ),
            rr(&[0xc0, 45], TYPE_A, 90, &[192, 0, 2, 3]),
        ],
    );
    assert!(parse_www(&resp, TYPE_A).is_ok());
    for len in 0..resp.len() {
        assert!(parse_www(&resp[..len], TYPE_A).is_err(), "cut at {len}");
    }
    for i in 0..resp.len() {
        for byte in [0x00, 0x01, 0x3f, 0x40, 0xc0, 0xff] {
            let mut damaged = resp.clone();
            damaged[i] = byte;
            let _ = parse_www(&damaged, TYPE_A);
        }
    }
    let short = rr(&QNAME, TYPE_A, 1, &[192, 0, 2]);
    let want = Err(Problem::Malformed("A record not 4 bytes"));
    assert_eq!(parse_www(&response(ID, OK, TYPE_A, &[short]), TYPE_A), want);
}

#[test]
fn answers_to_other_questions_are_not_ours() {
    let a = [rr(&QNAME, TYPE_A, 1, &[192, 0, 2, 1])];
    let not_ours = Err(Problem::NotOurs);
    let ours = response(ID, OK, TYPE_A, &a);
    assert_eq!(parse_www(&ours, TYPE_A), Ok(vec![answer("192.0.2.1", 1)]));
    let wrong_id = response(ID ^ 1, OK, TYPE_A, &a);
    assert_eq!(parse_www(&wrong_id, TYPE_A), not_ours);
    let a_query = response(ID, FLAG_RD, TYPE_A, &a);
    assert_eq!(parse_www(&a_query, TYPE_A), not_ours);
    assert_eq!(parse_www(&ours, TYPE_AAAA), not_ours);
    let other_name = parse(&ours, ID, &domain("www.example.org"), TYPE_A);
    assert_eq!(other_name, not_ours);
    let other_opcode = response(ID, OK | 0x2000, TYPE_A, &a);
    assert_eq!(parse_www(&other_opcode, TYPE_A), not_ours);
}

#[test]
fn rcodes_and_truncation() {
    let nx = response(ID, OK | RCODE_NXDOMAIN, TYPE_A, &[]);
    assert_eq!(parse_www(&nx, TYPE_A), Err(Problem::NxDomain));
    let servfail = response(ID, OK | 2, TYPE_A, &[]);
    assert_eq!(parse_www(&servfail, TYPE_A), Err(Problem::Rcode(2)));
    let a = rr(&QNAME, TYPE_A, 1, &[192, 0, 2, 1]);
    let tc = response(ID, OK | FLAG_TC, TYPE_A, &[a]);
    assert_eq!(parse_www(&tc, TYPE_A), Err(Problem::Truncated));
    let empty = response(ID, OK, TYPE_A, &[]);
    assert_eq!(parse_www(&empty, TYPE_A), Ok(vec![]));
}

#[test]
fn ttls_with_the_top_bit_set_mean_zero() {
    let a = rr(&QNAME, TYPE_A, 0x8000_0001, &[192, 0, 2, 1]);
    let resp = response(ID, OK, TYPE_A, &[a]);
    assert_eq!(parse_www(&resp, TYPE_A), Ok(vec![answer("192.0.2.1", 0)]));
}

#[test]
fn messages_name_the_domain_and_the_server() {
    let nx = DnsError::NoSuchDomain {
        domain: domain("example.invalid"),
        server: "192.0.2.53".parse().unwrap(),
    };
    assert_eq!(
        nx.to_string(),
        "example.invalid: no such domain (NXDOMAIN from 192.0.2.53); check the spelling"
    );
    let timeout = DnsError::Timeout {
        domain: domain("example.com"),
        timeout: Duration::from_secs(2),
        tried: vec![
            "192.0.2.53".parse().unwrap(),
            "2001:db8::53".parse().unwrap(),
        ],
    };
    assert_eq!(
        timeout.to_string(),
        "example.com: no resolver answered within 2s (tried 192.0.2.53, 2001:db8::53); check the network and the resolvers"
    );
}

/// A resolver on 127.0.0.1 that answers two queries with `reply`.
fn fake_server(reply: fn(&[u8]) -> Vec<Vec<u8>>) -> (SocketAddr, thread::JoinHandle<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let server = thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..2 {
            let (len, peer) = socket.recv_from(&mut buf).unwrap();
            for datagram in reply(&buf[..len]) {
                socket.send_to(&datagram, peer).unwrap();
            }
        }
    });
    (addr, server)
}

/// The query turned into a response with `flags` and `answers` (each
/// one rdata for the question's name and type).
fn respond(query: &[u8], flags: u16, answers: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let qtype = u16::from_be_bytes([query[query.len() - 4], query[query.len() - 3]]);
    let mut resp = query.to_vec();
    resp[2..4].copy_from_slice(&flags.to_be_bytes());
    resp[6..8].copy_from_slice(&u16::try_from(answers.len()).unwrap().to_be_bytes());
    for (ttl, rdata) in answers {
        resp.extend(rr(&QNAME, qtype, *ttl, rdata));
    }
    resp
}

fn addresses(query: &[u8]) -> Vec<Vec<u8>> {
    let qtype = u16::from_be_bytes([query[query.len() - 4], query[query.len() - 3]]);
    let (ttl, rdata) = if qtype == TYPE_A {
        (300, vec![192, 0, 2, 1])
    } else {
        (
            60,
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)
                .octets()
                .to_vec(),
        )
    };
    let mut forged = respond(query, OK, &[(1, vec![203, 0, 113, 66])]);
    forged[0] ^= 0x80;
    vec![forged, respond(query, OK, &[(ttl, rdata)])]
}

#[test]
fn round_trip_ignores_answers_with_other_ids() {
    let (server, thread) = fake_server(addresses);
    let got = resolve_at(
        &domain("www.example.com"),
        &[server],
        Duration::from_secs(5),
    );
    thread.join().unwrap();
    let want = vec![answer("192.0.2.1", 300), answer("2001:db8::1", 60)];
    assert_eq!(got.unwrap(), want);
}

#[test]
fn silent_and_failing_servers_are_skipped() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (failing, failing_thread) = fake_server(|q| vec![respond(q, OK | 2, &[])]);
    let (answering, answering_thread) = fake_server(addresses);
    let servers = [silent.local_addr().unwrap(), failing, answering];
    let name = domain("www.example.com");
    let got = resolve_at(&name, &servers, Duration::from_millis(300)).unwrap();
    assert_eq!(got.len(), 2);
    failing_thread.join().unwrap();
    answering_thread.join().unwrap();

    let timeout = Duration::from_millis(100);
    let err = resolve_at(&name, &servers[..1], timeout).unwrap_err();
    assert!(matches!(err, DnsError::Timeout { .. }), "{err}");
    let (failing, failing_thread) = fake_server(|q| vec![respond(q, OK | 5, &[])]);
    let err = resolve_at(&name, &[servers[0], failing], timeout).unwrap_err();
    failing_thread.join().unwrap();
    assert_eq!(
        err.to_string(),
        "www.example.com: 127.0.0.1 answered REFUSED; check the resolver or configure another"
    );
    let err = resolve_at(&name, &[], timeout).unwrap_err();
    assert!(matches!(err, DnsError::NoServers { .. }), "{err}");
}

#[test]
fn nxdomain_and_no_addresses_end_the_lookup() {
    let name = domain("www.example.com");
    let timeout = Duration::from_secs(5);
    let (nx, nx_thread) = fake_server(|q| vec![respond(q, OK | RCODE_NXDOMAIN, &[])]);
    // Another resolver would say the same: it is not asked.
    let next = UdpSocket::bind("127.0.0.1:0").unwrap();
    let servers = [nx, next.local_addr().unwrap()];
    let err = resolve_at(&name, &servers, timeout).unwrap_err();
    assert!(matches!(err, DnsError::NoSuchDomain { .. }), "{err}");
    next.set_nonblocking(true).unwrap();
    let asked = next.recv(&mut [0; 512]);
    assert_eq!(asked.unwrap_err().kind(), io::ErrorKind::WouldBlock);
    nx_thread.join().unwrap();
    let (empty, empty_thread) = fake_server(|q| vec![respond(q, OK, &[])]);
    let err = resolve_at(&name, &[empty], timeout).unwrap_err();
    assert!(matches!(err, DnsError::NoAddresses { .. }), "{err}");
    empty_thread.join().unwrap();
}
