//! Round-trip, digest and robustness tests for the plan and the wire format.

use proptest::prelude::*;

use crate::*;

fn path(s: &str) -> AbsPath {
    AbsPath::try_from(s).unwrap()
}

use crate::testing::sample_plan;

#[test]
fn plan_round_trips_and_digest_is_stable() {
    let plan = sample_plan();
    let bytes = plan.encode().unwrap();
    assert_eq!(bytes, plan.clone().encode().unwrap());
    let digest = PlanDigest::of_bytes(&bytes);
    let verified = Plan::verify(&bytes, &digest).unwrap();
    assert_eq!(verified.plan(), &plan);
    assert_eq!(verified.digest(), plan.seal().unwrap().digest());
    assert_eq!(digest.to_string().len(), 64);
}

#[test]
fn any_change_changes_the_digest() {
    let a = sample_plan().seal().unwrap().digest();
    let mut plan = sample_plan();
    plan.root.read_only = false;
    assert_ne!(a, plan.seal().unwrap().digest());
}

#[test]
fn verify_refuses_wrong_digest_and_trailing_bytes() {
    let bytes = sample_plan().encode().unwrap();
    let digest = PlanDigest::of_bytes(&bytes);
    assert!(matches!(
        Plan::verify(&bytes, &PlanDigest([0; 32])),
        Err(CodecError::DigestMismatch)
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    let longer_digest = PlanDigest::of_bytes(&longer);
    assert!(matches!(
        Plan::verify(&longer, &longer_digest),
        Err(CodecError::Trailing(1))
    ));
    assert!(Plan::verify(&bytes, &digest).is_ok());
}

#[test]
fn validate_rejects_cross_field_errors() {
    let mut plan = sample_plan();
    plan.ids.uid = 5;
    assert!(matches!(plan.validate(), Err(PlanError::IdUnmapped { .. })));

    let mut plan = sample_plan();
    plan.mounts.push(Mount::Tmpfs {
        target: path("/proc/sys"),
        size_bytes: 1,
    });
    assert!(matches!(plan.validate(), Err(PlanError::ReservedTarget(_))));

    let mut plan = sample_plan();
    plan.mounts.push(Mount::Tmpfs {
        target: path("/usr"),
        size_bytes: 1,
    });
    assert!(matches!(
        plan.validate(),
        Err(PlanError::DuplicateTarget(_))
    ));

    let mut plan = sample_plan();
    plan.mounts.push(Mount::Tmpfs {
        target: path("/bin/x"),
        size_bytes: 1,
    });
    assert!(matches!(
        plan.validate(),
        Err(PlanError::BeneathSymlink { .. })
    ));

    let mut plan = sample_plan();
    plan.ids.uid_map = vec![
        IdMap::new(0, 1000, 10).unwrap(),
        IdMap::new(5, 2000, 1).unwrap(),
    ];
    assert!(matches!(
        plan.validate(),
        Err(PlanError::IdMapOverlap { .. })
    ));

    let mut plan = sample_plan();
    plan.security.landlock.handled = FsAccess::READ;
    assert!(matches!(
        plan.validate(),
        Err(PlanError::LandlockUnhandled(_))
    ));
}

#[test]
fn newtypes_are_checked_on_decode() {
    // An encoded plan whose path was altered to be relative must not decode.
    let bytes = sample_plan().encode().unwrap();
    let needle = b"/usr/bin:/bin";
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut bad = bytes.clone();
    bad[pos] = b'u'; // still valid: env values are free-form
    assert!(Plan::verify(&bad, &PlanDigest::of_bytes(&bad)).is_ok());
    let needle = b"/usr";
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    let mut bad = bytes;
    bad[pos] = b'u'; // the first "/usr" is a mount source: now relative
    assert!(Plan::verify(&bad, &PlanDigest::of_bytes(&bad)).is_err());
}

#[test]
fn frames_round_trip_and_refuse_bad_headers() {
    let plan = sample_plan().encode().unwrap();
    let digest = PlanDigest::of_bytes(&plan);
    let env = Envelope::new(Message::Launch { plan, digest });
    let frame = encode_frame(&env).unwrap();
    let (decoded, used) = decode_frame(&frame).unwrap().unwrap();
    assert_eq!(decoded, env);
    assert_eq!(used, frame.len());
    assert!(decode_frame(&frame[..frame.len() - 1]).unwrap().is_none());
    assert!(decode_frame(&frame[..3]).unwrap().is_none());

    let huge = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
    assert!(matches!(
        decode_frame(&huge),
        Err(WireError::FrameTooLarge(_))
    ));

    let mut wrong_version = Envelope::new(Message::Hello { version: 9 });
    wrong_version.version = 9;
    let frame = encode_frame(&wrong_version).unwrap();
    assert!(matches!(decode_frame(&frame), Err(WireError::Version(9))));

    let mut wrong_magic = Envelope::new(Message::Signal(15));
    wrong_magic.magic = *b"XXXX";
    let frame = encode_frame(&wrong_magic).unwrap();
    assert!(matches!(decode_frame(&frame), Err(WireError::BadMagic)));
}

#[test]
fn exit_status_uses_shell_convention() {
    assert_eq!(ExitStatus::Code(3).shell_code(), 3);
    assert_eq!(ExitStatus::Signal(9).shell_code(), 137);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_frame(&bytes);
        let _ = Plan::verify(&bytes, &PlanDigest::of_bytes(&bytes));
    }

    #[test]
    fn mutated_plans_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = sample_plan().encode().unwrap();
        let len = bytes.len();
        for (i, b) in flips {
            bytes[i % len] ^= b;
        }
        if let Ok(v) = Plan::verify(&bytes, &PlanDigest::of_bytes(&bytes)) {
            // Whatever decodes re-encodes to the same bytes: the encoding is canonical.
            prop_assert_eq!(v.plan().encode().unwrap(), bytes);
        }
    }

    #[test]
    fn abs_path_round_trips(s in "(/[a-z.]{1,4}){0,4}") {
        if let Ok(p) = AbsPath::try_from(s.as_str()) {
            let bytes = bincode::serde::encode_to_vec(&p, crate::codec::CONFIG).unwrap();
            let back: AbsPath = crate::codec::decode_exact(&bytes).unwrap();
            prop_assert_eq!(back, p);
        }
    }
}

#[test]
fn agent_directories_are_reserved_and_secrets_unique() {
    let mut plan = sample_plan();
    plan.workspace = Some(Workspace {
        source: path("/home/u/ws"),
        mode: WorkspaceMode::BindRw,
    });
    plan.mounts.push(Mount::Tmpfs {
        target: path("/workspace/x"),
        size_bytes: 1,
    });
    assert!(matches!(plan.validate(), Err(PlanError::ReservedTarget(_))));

    let mut plan = sample_plan();
    let secret = Secret {
        name: SecretName::try_from("token".to_owned()).unwrap(),
        sha256: Sha256([0; 32]),
        size: 1,
    };
    plan.secrets = vec![secret.clone(), secret];
    assert!(matches!(
        plan.validate(),
        Err(PlanError::DuplicateSecret(_))
    ));

    let mut plan = sample_plan();
    plan.context = Some(Context {
        source: path("/src"),
        mode: ContextMode::Bind,
        verify: Some(Sha256([0; 32])),
    });
    assert!(matches!(plan.validate(), Err(PlanError::VerifyBind)));
}

#[test]
fn secret_names_are_single_components() {
    for ok in ["token", "api.key", "a-b_c"] {
        assert!(SecretName::try_from(ok.to_owned()).is_ok(), "{ok}");
    }
    for bad in ["", ".", "..", "a/b", "a b", "/x"] {
        assert!(SecretName::try_from(bad.to_owned()).is_err(), "{bad:?}");
    }
}

#[test]
fn host_paths_come_in_a_fixed_order() {
    let mut plan = sample_plan();
    plan.root.source = RootSource::Directory(path("/srv/root"));
    plan.mounts.push(Mount::CopyFile {
        source: path("/etc/hosts"),
        target: path("/etc/hosts"),
    });
    plan.workspace = Some(Workspace {
        source: path("/home/u/ws"),
        mode: WorkspaceMode::BindRw,
    });
    let paths: Vec<(&str, HostKind)> = plan
        .host_paths()
        .into_iter()
        .map(|(p, k)| (p.as_str(), k))
        .collect();
    assert_eq!(
        paths,
        [
            ("/srv/root", HostKind::Directory),
            ("/usr", HostKind::Any),
            ("/etc/hosts", HostKind::File),
            ("/home/u/ws", HostKind::Directory),
        ]
    );
    assert_eq!(plan.launch_fd_count(), 4 + STDIO_FDS + 1);
}

#[test]
fn cidrs_are_networks() {
    let cidr = |s: &str, p: u8| Cidr::try_from((s.parse::<std::net::IpAddr>().unwrap(), p));
    assert!(cidr("10.0.0.0", 8).is_ok());
    assert!(cidr("0.0.0.0", 0).is_ok());
    assert!(cidr("192.0.2.7", 32).is_ok());
    assert!(cidr("fd00::", 8).is_ok());
    assert!(cidr("10.0.0.1", 8).is_err());
    assert!(cidr("10.0.0.0", 33).is_err());
    assert!(cidr("fd00::1", 64).is_err());
    let link_local = cidr("169.254.0.0", 16).unwrap();
    assert!(cidr("169.254.169.254", 32).unwrap().within(link_local));
    assert!(!cidr("0.0.0.0", 0).unwrap().within(link_local));
    assert!(cidr("169.254.0.0", 16)
        .unwrap()
        .within(cidr("0.0.0.0", 0).unwrap()));
    assert!(!cidr("fd00::", 8)
        .unwrap()
        .within(cidr("0.0.0.0", 0).unwrap()));
}

#[test]
fn bridged_plans_check_published_ports() {
    let port = |ip: Option<&str>, host: u16, proto| PublishedPort {
        host_ip: ip.map(|ip| ip.parse().unwrap()),
        host_port: std::num::NonZeroU16::new(host).unwrap(),
        port: std::num::NonZeroU16::new(80).unwrap(),
        proto,
    };
    let bridged = |backend, publish| {
        let mut plan = sample_plan();
        plan.network = NetworkMode::Bridge(Bridge {
            backend,
            egress: None,
            publish,
        });
        plan.validate()
    };
    let pasta = || NatBackend::Pasta;
    assert_eq!(bridged(pasta(), vec![port(None, 8080, Proto::Tcp)]), Ok(()));
    assert_eq!(
        bridged(
            pasta(),
            vec![port(None, 8080, Proto::Tcp), port(None, 8080, Proto::Udp)]
        ),
        Ok(())
    );
    assert_eq!(
        bridged(
            pasta(),
            vec![
                port(Some("127.0.0.1"), 8080, Proto::Tcp),
                port(None, 8080, Proto::Tcp)
            ]
        ),
        Err(PlanError::PublishTwice("8080:80/tcp".into()))
    );
    assert_eq!(
        bridged(
            pasta(),
            vec![
                port(Some("127.0.0.1"), 8080, Proto::Tcp),
                port(Some("127.0.0.2"), 8080, Proto::Tcp)
            ]
        ),
        Ok(())
    );
    assert_eq!(
        bridged(NatBackend::Slirp4netns, vec![port(None, 8080, Proto::Tcp)]),
        Err(PlanError::PublishUnsupported)
    );
    let many = (1..=65).map(|p| port(None, 1000 + p, Proto::Tcp)).collect();
    assert!(matches!(
        bridged(pasta(), many),
        Err(PlanError::TooMany { max: 64, .. })
    ));
    assert!(port(None, 80, Proto::Tcp).privileged());
    assert!(!port(None, 1024, Proto::Tcp).privileged());
}

#[test]
fn domains_are_parsed_to_lowercase_without_the_dot() {
    for (input, want) in [
        ("Example.COM.", "example.com"),
        ("a-b.c0.io", "a-b.c0.io"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("1.2.3.example", "1.2.3.example"),
    ] {
        assert_eq!(
            Domain::try_from(input.to_owned()).unwrap().to_string(),
            want
        );
    }
    let longest = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
    assert_eq!(
        Domain::try_from(longest.clone()).unwrap().as_str().len(),
        253
    );
    let label = format!("{}.com", "a".repeat(63));
    assert_eq!(Domain::try_from(label.clone()).unwrap().as_str(), label);
}

#[test]
fn bad_domains_are_refused() {
    let too_long = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(62));
    let long_label = format!("{}.com", "a".repeat(64));
    for input in [
        "",
        ".",
        "com",
        "com.",
        "a..com",
        ".a.com",
        "example.com..",
        "-a.com",
        "a-.com",
        "ex ample.com",
        "ex_ample.com",
        "bücher.de",
        "1.2.3.4",
        "192.0.2.1.",
        "::1",
        &too_long,
        &long_label,
    ] {
        let err = Domain::try_from(input.to_owned()).unwrap_err();
        assert!(matches!(err, PlanError::Domain { .. }), "{input}: {err}");
    }
}

#[test]
fn capabilities_keep_ambient_within_bounding() {
    let bind = CapSet::EMPTY.with(Capability::NET_BIND_SERVICE);
    let caps = Capabilities::new(bind, bind).unwrap();
    assert_eq!(
        caps.ambient().iter().collect::<Vec<_>>(),
        [Capability::NET_BIND_SERVICE]
    );
    assert!(matches!(
        Capabilities::new(CapSet::EMPTY, bind),
        Err(PlanError::AmbientNotBounding(names)) if names == "CAP_NET_BIND_SERVICE"
    ));
    assert_eq!(
        Capability::from_name("CAP_CHECKPOINT_RESTORE").map(Capability::number),
        Some(CAP_LAST)
    );
    assert_eq!(Capability::from_name("NET_BIND_SERVICE"), None);
    assert!(CapSet::try_from(1u64 << (CAP_LAST + 1)).is_err());
    assert_eq!(Capabilities::default(), Capabilities::NONE);
}

#[test]
fn capabilities_are_checked_on_decode() {
    // An encoded plan whose ambient set was widened past bounding must not
    // decode: the helper gets the same check as the front end.
    let mut plan = sample_plan();
    let bind = CapSet::EMPTY.with(Capability::NET_BIND_SERVICE);
    plan.security.capabilities = Capabilities::new(bind, bind).unwrap();
    plan.validate().unwrap();
    let bytes = plan.encode().unwrap();
    let good = PlanDigest::of_bytes(&bytes);
    assert_eq!(Plan::verify(&bytes, &good).unwrap().plan(), &plan);
    // bincode writes the two u64 masks as varints: 1024 is 0xfb 0x00 0x04.
    let needle = [0xfb, 0x00, 0x04, 0xfb, 0x00, 0x04];
    let pos = bytes.windows(6).position(|w| w == needle).unwrap();
    let mut bad = bytes.clone();
    bad[pos + 1] = 0x01; // bounding 1024 -> 1025 is fine; ambient must stay inside
    bad[pos + 4] = 0x01; // ambient 1025 too: still a subset
    assert!(Plan::verify(&bad, &PlanDigest::of_bytes(&bad)).is_ok());
    let mut bad = bytes.clone();
    bad[pos + 4] = 0x01; // ambient 1025, bounding 1024: not a subset
    assert!(Plan::verify(&bad, &PlanDigest::of_bytes(&bad)).is_err());
}

#[test]
fn landlock_minimum_abi_is_bounded() {
    let mut plan = sample_plan();
    plan.security.landlock.enforcement = Enforcement::MinimumAbi(LANDLOCK_MAX_ABI);
    plan.validate().unwrap();
    for abi in [0, LANDLOCK_MAX_ABI + 1] {
        plan.security.landlock.enforcement = Enforcement::MinimumAbi(abi);
        assert!(matches!(plan.validate(), Err(PlanError::LandlockAbi(a)) if a == abi));
    }
}

#[test]
fn supplementary_groups_never_come_with_setgid() {
    let mut plan = sample_plan();
    plan.ids.gid_map = vec![IdMap::new(0, 100_000, 1000).unwrap()];
    plan.ids.groups = vec![100];
    assert_eq!(plan.validate(), Ok(()));
    let setgid = Capability::from_name("CAP_SETGID").unwrap();
    plan.security.capabilities =
        Capabilities::new(CapSet::EMPTY.with(setgid), CapSet::EMPTY).unwrap();
    assert_eq!(plan.validate(), Err(PlanError::GroupsWithSetgid));
    plan.ids.groups = vec![5000];
    plan.security.capabilities = Capabilities::NONE;
    assert_eq!(
        plan.validate(),
        Err(PlanError::IdUnmapped {
            which: "group",
            id: 5000
        })
    );
}

#[test]
fn egress_resolvers_are_bounded() {
    let mut plan = sample_plan();
    plan.network = NetworkMode::Bridge(Bridge {
        backend: NatBackend::Pasta,
        egress: Some(EgressPolicy {
            allow: vec![],
            domains: vec![],
            tcp_ports: vec![],
            udp_ports: vec![],
            dns: vec!["192.0.2.53".parse().unwrap(); MAX_RESOLVERS + 1],
            report: EgressReport::Off,
        }),
        publish: vec![],
    });
    assert!(matches!(
        plan.validate(),
        Err(PlanError::TooMany {
            what: "egress resolvers",
            ..
        })
    ));
}
