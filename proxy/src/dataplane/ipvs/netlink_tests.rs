//! Exact bytes of the IPVS messages, derived by hand from the uapi headers.
//!
//! Every expected buffer below is laid out as the kernel reads it (x86_64, little endian):
//! `nlmsghdr` = len u32, type u16, flags u16, seq u32, pid u32 (16 bytes);
//! `genlmsghdr` = cmd u8, version u8, reserved u16 (4 bytes);
//! `nlattr` = len u16 (header + payload, without padding), type u16, payload, zero padding
//! to a multiple of 4. Ports are big endian (`__be16`), everything else host order.

use super::*;

const FAMILY: u16 = 36;

fn v4_key() -> ServiceKey {
    ServiceKey {
        addr: "10.96.0.1".parse().unwrap(),
        protocol: Protocol::Tcp,
        port: 80,
    }
}

fn service(key: ServiceKey, persistence: Option<u32>) -> Service {
    Service {
        key,
        spec: ServiceSpec {
            scheduler: "rr".into(),
            persistence,
        },
    }
}

fn dest() -> Dest {
    Dest {
        addr: "10.244.1.5".parse().unwrap(),
        port: 8080,
        weight: 1,
    }
}

/// The nested IPVS_CMD_ATTR_SERVICE key of 10.96.0.1 tcp/80: 4 + 4×8 = 36 bytes.
const V4_KEY_NEST: [u8; 36] = [
    36, 0, 1, 0, // nla_len 36, IPVS_CMD_ATTR_SERVICE
    6, 0, 1, 0, 2, 0, 0, 0, // IPVS_SVC_ATTR_AF = AF_INET (u16) + 2 pad
    6, 0, 2, 0, 6, 0, 0, 0, // IPVS_SVC_ATTR_PROTOCOL = IPPROTO_TCP (u16) + 2 pad
    8, 0, 3, 0, 10, 96, 0, 1, // IPVS_SVC_ATTR_ADDR = 4 address bytes
    6, 0, 4, 0, 0, 80, 0, 0, // IPVS_SVC_ATTR_PORT = 80 big endian + 2 pad
];

#[test]
fn new_service_ipv4_bytes() {
    let bytes = encode(&Request::NewService(service(v4_key(), None)), FAMILY, 7);
    let mut expected = vec![
        92, 0, 0, 0, // nlmsg_len: 16 + 4 + 72
        36, 0, // nlmsg_type: the IPVS family id
        5, 0, // NLM_F_REQUEST | NLM_F_ACK
        7, 0, 0, 0, // seq
        0, 0, 0, 0, // pid
        1, 1, 0, 0, // IPVS_CMD_NEW_SERVICE, version 1
        72, 0, 1, 0, // IPVS_CMD_ATTR_SERVICE: 4 + 68
    ];
    expected.extend_from_slice(&V4_KEY_NEST[4..]);
    expected.extend_from_slice(&[
        7, 0, 6, 0, b'r', b'r', 0, 0, // SCHED_NAME "rr\0" (len 7) + 1 pad
        12, 0, 7, 0, 0, 0, 0, 0, 255, 255, 255, 255, // FLAGS {flags 0, mask ~0}
        8, 0, 8, 0, 0, 0, 0, 0, // TIMEOUT 0
        8, 0, 9, 0, 255, 255, 255, 255, // NETMASK 0xffffffff
    ]);
    assert_eq!(bytes, expected);
}

#[test]
fn persistent_service_sets_the_flag_and_timeout() {
    let bytes = encode(
        &Request::SetService(service(v4_key(), Some(10800))),
        FAMILY,
        1,
    );
    assert_eq!(bytes[16], IPVS_CMD_SET_SERVICE);
    // FLAGS at 16 + 4 + 36 + 8 (sched): flags = IP_VS_SVC_F_PERSISTENT, mask ~0.
    assert_eq!(
        &bytes[64..76],
        &[12, 0, 7, 0, 1, 0, 0, 0, 255, 255, 255, 255]
    );
    // TIMEOUT 10800 = 0x2a30.
    assert_eq!(&bytes[76..84], &[8, 0, 8, 0, 0x30, 0x2a, 0, 0]);
}

#[test]
fn new_service_ipv6_bytes() {
    let key = ServiceKey {
        addr: "fd00::10".parse().unwrap(),
        protocol: Protocol::Udp,
        port: 53,
    };
    let bytes = encode(&Request::NewService(service(key, None)), FAMILY, 2);
    let mut expected = vec![
        104, 0, 0, 0, 36, 0, 5, 0, 2, 0, 0, 0, 0, 0, 0, 0, // 16 + 4 + 84
        1, 1, 0, 0, //
        84, 0, 1, 0, // 4 + 8 + 8 + 20 + 8 + 8 + 12 + 8 + 8
        6, 0, 1, 0, 10, 0, 0, 0, // AF_INET6
        6, 0, 2, 0, 17, 0, 0, 0, // IPPROTO_UDP
        20, 0, 3, 0, // ADDR: 16 bytes
        0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, //
        6, 0, 4, 0, 0, 53, 0, 0, // port 53
        7, 0, 6, 0, b'r', b'r', 0, 0, //
        12, 0, 7, 0, 0, 0, 0, 0, 255, 255, 255, 255, //
        8, 0, 8, 0, 0, 0, 0, 0, //
        8, 0, 9, 0, 128, 0, 0, 0, // NETMASK: a prefix length for IPv6
    ];
    assert_eq!(bytes, expected);
    expected.clear();
}

#[test]
fn del_service_carries_only_the_key() {
    let bytes = encode(&Request::DelService(v4_key()), FAMILY, 3);
    let mut expected = vec![
        56, 0, 0, 0, 36, 0, 5, 0, 3, 0, 0, 0, 0, 0, 0, 0, // 16 + 4 + 36
        3, 1, 0, 0, // IPVS_CMD_DEL_SERVICE
    ];
    expected.extend_from_slice(&V4_KEY_NEST);
    assert_eq!(bytes, expected);
}

#[test]
fn new_dest_ipv4_bytes() {
    let bytes = encode(&Request::NewDest(v4_key(), dest()), FAMILY, 4);
    let mut expected = vec![
        116, 0, 0, 0, 36, 0, 5, 0, 4, 0, 0, 0, 0, 0, 0, 0, // 16 + 4 + 36 + 60
        5, 1, 0, 0, // IPVS_CMD_NEW_DEST
    ];
    expected.extend_from_slice(&V4_KEY_NEST);
    expected.extend_from_slice(&[
        60, 0, 2, 0, // IPVS_CMD_ATTR_DEST: 4 + 7×8
        8, 0, 1, 0, 10, 244, 1, 5, // DEST_ATTR_ADDR
        6, 0, 2, 0, 0x1f, 0x90, 0, 0, // DEST_ATTR_PORT 8080 big endian
        8, 0, 3, 0, 0, 0, 0, 0, // FWD_METHOD = IP_VS_CONN_F_MASQ
        8, 0, 4, 0, 1, 0, 0, 0, // WEIGHT 1
        8, 0, 5, 0, 0, 0, 0, 0, // U_THRESH
        8, 0, 6, 0, 0, 0, 0, 0, // L_THRESH
        6, 0, 11, 0, 2, 0, 0, 0, // ADDR_FAMILY AF_INET
    ]);
    assert_eq!(bytes, expected);
}

#[test]
fn set_dest_changes_the_weight() {
    let mut d = dest();
    d.weight = 0;
    let bytes = encode(&Request::SetDest(v4_key(), d), FAMILY, 5);
    assert_eq!(bytes[16], IPVS_CMD_SET_DEST);
    assert_eq!(
        &bytes[16 + 4 + 36 + 4 + 24..][..8],
        &[8, 0, 4, 0, 0, 0, 0, 0]
    );
}

#[test]
fn del_dest_and_ipv6_dest_bytes() {
    let bytes = encode(&Request::DelDest(v4_key(), dest()), FAMILY, 6);
    let mut expected = vec![
        84, 0, 0, 0, 36, 0, 5, 0, 6, 0, 0, 0, 0, 0, 0, 0, // 16 + 4 + 36 + 28
        7, 1, 0, 0, // IPVS_CMD_DEL_DEST
    ];
    expected.extend_from_slice(&V4_KEY_NEST);
    expected.extend_from_slice(&[
        28, 0, 2, 0, //
        8, 0, 1, 0, 10, 244, 1, 5, //
        6, 0, 2, 0, 0x1f, 0x90, 0, 0, //
        6, 0, 11, 0, 2, 0, 0, 0, //
    ]);
    assert_eq!(bytes, expected);

    let key6 = ServiceKey {
        addr: "fd00::10".parse().unwrap(),
        protocol: Protocol::Tcp,
        port: 80,
    };
    let d6 = Dest {
        addr: "fd00:1::5".parse().unwrap(),
        port: 80,
        weight: 1,
    };
    let bytes = encode(&Request::DelDest(key6, d6), FAMILY, 6);
    // service nest 4 + 8 + 8 + 20 + 8 = 48; dest nest 4 + 20 + 8 + 8 = 40.
    assert_eq!(bytes.len(), 16 + 4 + 48 + 40);
    assert_eq!(&bytes[68..72], &[40, 0, 2, 0]);
    assert_eq!(
        &bytes[72..92],
        &[
            20, 0, 1, 0, 0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5
        ]
    );
    assert_eq!(&bytes[100..108], &[6, 0, 11, 0, 10, 0, 0, 0]);
}

#[test]
fn dumps_and_family_lookup_bytes() {
    assert_eq!(
        encode(&Request::GetServices, FAMILY, 9),
        vec![
            20, 0, 0, 0, 36, 0, 0x01, 0x03, 9, 0, 0, 0, 0, 0, 0, 0, // REQUEST | DUMP
            4, 1, 0, 0, // IPVS_CMD_GET_SERVICE
        ]
    );
    let dests = encode(&Request::GetDests(v4_key()), FAMILY, 10);
    assert_eq!(&dests[6..8], &[0x01, 0x03]);
    assert_eq!(dests[16], IPVS_CMD_GET_DEST);
    assert_eq!(&dests[20..], &V4_KEY_NEST);

    assert_eq!(
        encode_get_family("IPVS", 1),
        vec![
            32, 0, 0, 0, 0x10, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, // GENL_ID_CTRL
            3, 1, 0, 0, // CTRL_CMD_GETFAMILY
            9, 0, 2, 0, b'I', b'P', b'V', b'S', 0, 0, 0, 0, // FAMILY_NAME "IPVS\0" + 3 pad
        ]
    );
}

/// A netlink message around `payload` (genl header included by the caller).
fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&4242u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m
}

#[test]
fn a_service_dump_decodes() {
    // What the kernel sends for one virtual server: the whole 16-byte nf_inet_addr, the
    // flags with the kernel's HASHED bit, and a STATS nest we ignore.
    let payload = [
        1, 1, 0, 0, // IPVS_CMD_NEW_SERVICE
        92, 0, 1, 0, // IPVS_CMD_ATTR_SERVICE: 4 + 8 + 8 + 20 + 8 + 8 + 12 + 8 + 8 + 8
        6, 0, 1, 0, 2, 0, 0, 0, // AF_INET
        6, 0, 2, 0, 17, 0, 0, 0, // UDP
        20, 0, 3, 0, 10, 96, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 10.96.0.10
        6, 0, 4, 0, 0, 53, 0, 0, // port 53
        7, 0, 6, 0, b'r', b'r', 0, 0, // "rr"
        12, 0, 7, 0, 3, 0, 0, 0, 255, 255, 255, 255, // PERSISTENT | HASHED
        8, 0, 8, 0, 0x2c, 0x01, 0, 0, // timeout 300
        8, 0, 9, 0, 255, 255, 255, 255, // netmask
        8, 0, 10, 0, 4, 0, 0, 0, // an attribute we do not read (type 10, STATS)
    ];
    let mut buf = message(FAMILY, 2, 1, &payload);
    buf.extend(message(NLMSG_DONE, 2, 1, &[0, 0, 0, 0]));
    let replies = parse_messages(&buf).unwrap();
    assert_eq!(replies.len(), 2);
    let Reply::Data { seq: 1, cmd, attrs } = replies[0] else {
        panic!("{:?}", replies[0]);
    };
    assert_eq!(cmd, IPVS_CMD_NEW_SERVICE);
    assert_eq!(
        decode_service(attrs).unwrap(),
        Some(Service {
            key: ServiceKey {
                addr: "10.96.0.10".parse().unwrap(),
                protocol: Protocol::Udp,
                port: 53
            },
            spec: ServiceSpec {
                scheduler: "rr".into(),
                persistence: Some(300)
            }
        })
    );
    assert_eq!(replies[1], Reply::Done { seq: 1 });
}

#[test]
fn a_dest_dump_decodes_ipv4_and_ipv6() {
    let payload = [
        5, 1, 0, 0, // IPVS_CMD_NEW_DEST
        68, 0, 2, 0, // IPVS_CMD_ATTR_DEST: 4 + 20 + 8×5 + 4
        20, 0, 1, 0, 10, 244, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
        6, 0, 2, 0, 0x1f, 0x90, 0, 0, // port 8080
        8, 0, 3, 0, 0, 0, 0, 0, // masq
        8, 0, 4, 0, 3, 0, 0, 0, // weight 3
        8, 0, 7, 0, 9, 0, 0, 0, // ACTIVE_CONNS: not ours to read
        6, 0, 11, 0, 2, 0, 0, 0, // AF_INET
        // a nested attribute flagged NLA_F_NESTED is read by its type bits
        4, 0, 12, 0x80,
    ];
    let buf = message(FAMILY, 2, 3, &payload);
    let replies = parse_messages(&buf).unwrap();
    let Reply::Data { attrs, .. } = replies[0] else {
        panic!()
    };
    let d = decode_dest(attrs, "10.96.0.1".parse().unwrap()).unwrap();
    assert_eq!(
        d,
        Dest {
            addr: "10.244.1.5".parse().unwrap(),
            port: 8080,
            weight: 3
        }
    );

    // Without ADDR_FAMILY (old kernels), the service's family decides.
    let payload6 = [
        5, 1, 0, 0, //
        40, 0, 2, 0, //
        20, 0, 1, 0, 0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, //
        6, 0, 2, 0, 0, 80, 0, 0, //
        8, 0, 4, 0, 1, 0, 0, 0, //
    ];
    let buf = message(FAMILY, 2, 3, &payload6);
    let replies = parse_messages(&buf).unwrap();
    let Reply::Data { attrs, .. } = replies[0] else {
        panic!()
    };
    let d = decode_dest(attrs, "fd00::10".parse().unwrap()).unwrap();
    assert_eq!(d.addr, "fd00:1::5".parse::<IpAddr>().unwrap());
    assert_eq!((d.port, d.weight), (80, 1));
}

#[test]
fn the_family_id_decodes_from_the_controller_reply() {
    let payload = [
        1, 2, 0, 0, // CTRL_CMD_NEWFAMILY, version 2
        9, 0, 2, 0, b'I', b'P', b'V', b'S', 0, 0, 0, 0, // FAMILY_NAME
        6, 0, 1, 0, 36, 0, 0, 0, // FAMILY_ID 36
    ];
    let buf = message(GENL_ID_CTRL, 0, 1, &payload);
    let replies = parse_messages(&buf).unwrap();
    let Reply::Data { attrs, .. } = replies[0] else {
        panic!()
    };
    assert_eq!(decode_family_id(attrs).unwrap(), 36);
}

#[test]
fn errors_and_acks_parse_to_clear_errors() {
    // struct nlmsgerr: error -17 (EEXIST), then the request's own header.
    let mut err = (-17i32).to_ne_bytes().to_vec();
    err.extend_from_slice(&[92, 0, 0, 0, 36, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
    let mut buf = message(NLMSG_ERROR, 0, 7, &err);
    buf.extend(message(NLMSG_ERROR, 0x100, 8, &[0; 20]));
    let replies = parse_messages(&buf).unwrap();
    assert_eq!(
        replies,
        vec![
            Reply::Error {
                seq: 7,
                errno: libc::EEXIST
            },
            Reply::Ack { seq: 8 }
        ]
    );
    let e = error_for("adding virtual server tcp:10.96.0.1:80", libc::EEXIST);
    assert_eq!(
        e.to_string(),
        "ipvs: adding virtual server tcp:10.96.0.1:80: File exists (os error 17) (it already exists)"
    );
    assert!(Request::DelService(v4_key()).is_gone(libc::ESRCH));
    assert!(!Request::NewService(service(v4_key(), None)).is_gone(libc::ESRCH));
}

#[test]
fn padding_and_truncation_are_checked() {
    // A 5-byte payload takes 8 bytes; the next attribute starts aligned.
    let buf = [9, 0, 1, 0, 1, 2, 3, 4, 5, 0, 0, 0, 5, 0, 2, 0, 7, 0, 0, 0];
    let list = attrs(&buf).unwrap();
    assert_eq!(list, vec![(1, &[1, 2, 3, 4, 5][..]), (2, &[7][..])]);
    // An attribute longer than the buffer, or a message longer than the datagram, fails.
    assert!(attrs(&[12, 0, 1, 0, 1, 2]).is_err());
    let mut m = message(FAMILY, 0, 1, &[1, 1, 0, 0]);
    m.truncate(18);
    assert!(parse_messages(&m).is_err());
    // Encoded attributes are always aligned: a 3-byte scheduler name "sh\0" gets one pad.
    let mut s = service(v4_key(), None);
    s.spec.scheduler = "sh".into();
    let bytes = encode(&Request::NewService(s), FAMILY, 1);
    assert_eq!(bytes.len() % 4, 0);
    assert_eq!(&bytes[56..64], &[7, 0, 6, 0, b's', b'h', 0, 0]);
}
