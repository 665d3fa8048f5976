use super::*;

#[test]
fn type_numbers_are_those_of_xs_wire_h() {
    let expect = [
        (MsgType::Control, 0),
        (MsgType::Directory, 1),
        (MsgType::Read, 2),
        (MsgType::GetPerms, 3),
        (MsgType::Watch, 4),
        (MsgType::Unwatch, 5),
        (MsgType::TransactionStart, 6),
        (MsgType::TransactionEnd, 7),
        (MsgType::Introduce, 8),
        (MsgType::Release, 9),
        (MsgType::GetDomainPath, 10),
        (MsgType::Write, 11),
        (MsgType::Mkdir, 12),
        (MsgType::Rm, 13),
        (MsgType::SetPerms, 14),
        (MsgType::WatchEvent, 15),
        (MsgType::Error, 16),
        (MsgType::IsDomainIntroduced, 17),
        (MsgType::Resume, 18),
        (MsgType::SetTarget, 19),
        (MsgType::Restrict, 20),
        (MsgType::ResetWatches, 21),
        (MsgType::DirectoryPart, 22),
    ];
    for (t, n) in expect {
        assert_eq!(t.code(), n, "{t:?}");
        assert_eq!(MsgType::from_code(n), Some(t));
    }
    assert_eq!(MsgType::from_code(23), None);
    assert_eq!(MsgType::from_code(0xffff), None);
}

#[test]
fn header_is_16_little_endian_bytes() {
    let h = Header {
        ty: 2,
        req_id: 0x01020304,
        tx_id: 7,
        len: 5,
    };
    let b = h.encode();
    assert_eq!(&b[..8], &[2, 0, 0, 0, 4, 3, 2, 1]);
    assert_eq!(&b[8..], &[7, 0, 0, 0, 5, 0, 0, 0]);
    assert_eq!(Header::parse(&b), h);
}

#[test]
fn decoder_splits_a_stream_at_any_boundary() {
    let a = Message::new(MsgType::Read, 1, 0, b"/local\0".to_vec());
    let b = Message::new(MsgType::Write, 2, 3, b"/x\0value".to_vec());
    let c = Message::new(MsgType::TransactionStart, 3, 0, vec![]);
    let mut stream = a.to_bytes();
    stream.extend(b.to_bytes());
    stream.extend(c.to_bytes());
    for cut in 0..stream.len() {
        let mut d = Decoder::new(PAYLOAD_MAX);
        let mut got = d.push(&stream[..cut]).unwrap();
        got.extend(d.push(&stream[cut..]).unwrap());
        assert_eq!(got, vec![a.clone(), b.clone(), c.clone()], "cut at {cut}");
        assert_eq!(d.pending(), 0);
        d.finish().unwrap();
    }
}

#[test]
fn oversized_and_truncated_frames_are_errors() {
    let mut d = Decoder::new(PAYLOAD_MAX);
    let h = Header {
        ty: 2,
        req_id: 1,
        tx_id: 0,
        len: u32::MAX,
    };
    assert_eq!(
        d.push(&h.encode()).unwrap_err(),
        WireError::Oversized {
            len: u32::MAX,
            max: PAYLOAD_MAX
        }
    );
    // 4096 is allowed, 4097 is not.
    let mut d = Decoder::new(PAYLOAD_MAX);
    let ok = Message::new(MsgType::Read, 1, 0, vec![b'a'; PAYLOAD_MAX]);
    assert_eq!(d.push(&ok.to_bytes()).unwrap().len(), 1);
    let big = Message::new(MsgType::Read, 1, 0, vec![b'a'; PAYLOAD_MAX + 1]);
    assert!(d.push(&big.to_bytes()).is_err());

    let mut d = Decoder::new(PAYLOAD_MAX);
    let m = Message::new(MsgType::Read, 1, 0, b"/abc\0".to_vec()).to_bytes();
    assert!(d.push(&m[..10]).unwrap().is_empty());
    assert_eq!(
        d.finish().unwrap_err(),
        WireError::Truncated { have: 10, need: 16 }
    );
    assert!(d.push(&m[10..18]).unwrap().is_empty());
    assert_eq!(
        d.finish().unwrap_err(),
        WireError::Truncated { have: 18, need: 21 }
    );
}

/// A cheap deterministic generator (xorshift) for garbage input.
fn garbage(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn garbage_never_panics_and_memory_stays_bounded() {
    for seed in 0..300u64 {
        let bytes = garbage(seed, 2000);
        let mut d = Decoder::new(PAYLOAD_MAX);
        for chunk in bytes.chunks(37) {
            match d.push(chunk) {
                Ok(msgs) => {
                    for m in msgs {
                        let _ = Request::decode(m.ty, &m.payload);
                        let _ = parse_directory(&m.payload);
                        let _ = parse_perms(&m.payload);
                        let _ = parse_watch_event(&m.payload);
                        let _ = parse_directory_part(&m.payload);
                        let _ = parse_error(&m.payload);
                        let _ = parse_u32(&m.payload);
                    }
                }
                Err(_) => break,
            }
            assert!(d.pending() <= HEADER_LEN + PAYLOAD_MAX + 37);
        }
    }
}

#[test]
fn every_request_round_trips() {
    let reqs = vec![
        Request::Control(vec!["log".into(), "on".into()]),
        Request::Directory("/local/domain".into()),
        Request::Read("/local/domain/0/name".into()),
        Request::GetPerms("/vm".into()),
        Request::Watch {
            path: "@releaseDomain".into(),
            token: "t1".into(),
        },
        Request::Unwatch {
            path: "/a".into(),
            token: "".into(),
        },
        Request::TransactionStart,
        Request::TransactionEnd { commit: true },
        Request::TransactionEnd { commit: false },
        Request::Introduce {
            domid: 3,
            gfn: 0xfeffc,
            evtchn: 1,
        },
        Request::Release(3),
        Request::GetDomainPath(7),
        Request::Write {
            path: "/a/b".into(),
            value: b"x\0y".to_vec(),
        },
        Request::Write {
            path: "data".into(),
            value: vec![],
        },
        Request::Mkdir("/a".into()),
        Request::Rm("/a".into()),
        Request::SetPerms {
            path: "/a".into(),
            perms: vec![Perm::new(Access::None, 0), Perm::new(Access::Read, 5)],
        },
        Request::IsDomainIntroduced(1),
        Request::Resume(1),
        Request::SetTarget {
            domid: 2,
            target: 1,
        },
        Request::ResetWatches,
        Request::DirectoryPart {
            path: "/".into(),
            offset: 40,
        },
    ];
    for r in reqs {
        let p = r.encode(PAYLOAD_MAX).unwrap();
        assert_eq!(
            Request::decode(r.msg_type().code(), &p).unwrap(),
            r,
            "{r:?}"
        );
    }
}

#[test]
fn request_payloads_are_byte_exact() {
    assert_eq!(Request::Read("/a".into()).encode(4096).unwrap(), b"/a\0");
    assert_eq!(
        Request::Write {
            path: "/a".into(),
            value: b"v".to_vec()
        }
        .encode(4096)
        .unwrap(),
        b"/a\0v",
        "no NUL after a written value"
    );
    assert_eq!(Request::TransactionStart.encode(4096).unwrap(), b"\0");
    assert_eq!(
        Request::Watch {
            path: "/a".into(),
            token: "t".into()
        }
        .encode(4096)
        .unwrap(),
        b"/a\0t\0"
    );
}

#[test]
fn bad_requests_are_refused() {
    // Unknown and removed types: ENOSYS (None).
    assert_eq!(Request::decode(23, b"/a\0"), Err(None));
    assert_eq!(Request::decode(20, b"\0"), Err(None));
    // One-string requests need exactly one terminated string.
    for bad in [&b"/a"[..], b"/a\0/b\0", b"", b"/a\0x"] {
        assert!(matches!(Request::decode(2, bad), Err(Some(_))), "{bad:?}");
    }
    assert!(matches!(Request::decode(7, b"X\0"), Err(Some(_))));
    assert!(matches!(Request::decode(4, b"/a\0t\0d\0"), Err(Some(_))));
    assert!(matches!(Request::decode(14, b"/a\0x0\0"), Err(Some(_))));
    assert!(matches!(Request::decode(15, b"/a\0t\0"), Err(Some(_))));
    let long = "/".to_string() + &"a".repeat(5000);
    assert!(Request::Read(long).encode(PAYLOAD_MAX).is_err());
    let big = Request::Write {
        path: "/a".into(),
        value: vec![0; 4094],
    };
    assert!(big.encode(PAYLOAD_MAX).is_err());
    assert!(big.encode(PAYLOAD_MAX + 10).is_ok());
}

#[test]
fn paths_follow_the_daemons_rules() {
    for ok in ["/", "/local/domain/0", "data", "@releaseDomain", "a-b_c"] {
        check_path(ok).unwrap();
    }
    for bad in ["", "/a/", "/a//b", "/a b", "/a\0", "/ü"] {
        assert!(check_path(bad).is_err(), "{bad:?}");
    }
    check_path(&("/".to_string() + &"a".repeat(ABS_PATH_MAX - 1))).unwrap();
    assert!(check_path(&("/".to_string() + &"a".repeat(ABS_PATH_MAX))).is_err());
}

#[test]
fn permissions_parse_like_strtol_base_0() {
    assert_eq!(Perm::parse("n0").unwrap(), Perm::new(Access::None, 0));
    assert_eq!(Perm::parse("r5").unwrap(), Perm::new(Access::Read, 5));
    assert_eq!(Perm::parse("b12").unwrap(), Perm::new(Access::Both, 12));
    assert_eq!(Perm::parse("w0x10").unwrap(), Perm::new(Access::Write, 16));
    assert_eq!(Perm::parse("r010").unwrap(), Perm::new(Access::Read, 8));
    for bad in ["x1", "r", "rq", "", "r-1", "r+1", "r99999999999"] {
        assert!(Perm::parse(bad).is_err(), "{bad:?}");
    }
    let list = parse_perms(b"n0\0r1\0").unwrap();
    assert_eq!(perms_to_string(&list), "n0,r1");
    assert_eq!(encode_perms(&list), b"n0\0r1\0");
    assert!(parse_perms(b"").is_err());
}

#[test]
fn error_names_map_to_errno() {
    assert_eq!(parse_error(b"ENOENT\0"), XsErr::Known(ErrName::Enoent));
    assert_eq!(parse_error(b"ENOENT\0").errno(), libc::ENOENT);
    assert_eq!(parse_error(b"EACCES\0").errno(), libc::EACCES);
    assert_eq!(parse_error(b"EAGAIN\0").errno(), libc::EAGAIN);
    assert_eq!(parse_error(b"EQUOTA\0"), XsErr::Known(ErrName::Equota));
    assert_eq!(parse_error(b"EQUOTA\0").errno(), libc::ENOSPC);
    let weird = parse_error(&[b'Z'; 100]);
    assert_eq!(weird, XsErr::Unknown("Z".repeat(32)));
    assert_eq!(weird.errno(), libc::EINVAL);
    for e in ErrName::ALL {
        assert_eq!(parse_error(&encode_error(e)), XsErr::Known(e));
    }
}

#[test]
fn replies_decode() {
    assert_eq!(parse_directory(b"").unwrap(), Vec::<String>::new());
    assert_eq!(parse_directory(b"0\x001\0").unwrap(), ["0", "1"]);
    assert!(parse_directory(b"0\x001").is_err());
    parse_ok(b"OK\0").unwrap();
    assert!(parse_ok(b"NO\0").is_err());
    assert_eq!(parse_u32(b"17\0").unwrap(), 17);
    assert!(parse_u32(b"x\0").is_err());
    assert!(parse_bool(b"T\0").unwrap());
    assert!(!parse_bool(b"F\0").unwrap());
    assert_eq!(
        parse_watch_event(b"/a/b\0tok\0").unwrap(),
        ("/a/b".to_string(), "tok".to_string())
    );
    assert_eq!(
        parse_directory_part(b"5\0a\0b\0\0").unwrap(),
        (5, vec!["a".to_string(), "b".to_string()], true)
    );
    assert_eq!(
        parse_directory_part(b"5\0a\0").unwrap(),
        (5, vec!["a".to_string()], false)
    );
    assert_eq!(parse_directory_part(b"5\0\0").unwrap(), (5, vec![], true));
}
