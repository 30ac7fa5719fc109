//! NTP datagrams (src/wire/ntp.rs): arbitrary bytes as a request to the server
//! (`respond`, `kiss`) and as a reply to the client (`read_reply`), with arbitrary values
//! to serve.
//!
//! Checked: no panic; a reply exists only for a request of 48 to 1024 bytes, mode 3,
//! version 3 or 4, and is exactly 48 bytes (never larger than the request: no
//! amplification), mode 4, the request's version and poll, its transmit timestamp as the
//! origin; a Kiss-o'-Death is stratum 0 with its code; `read_reply` accepts only mode 4
//! with our origin, a stratum of 1-15 and leap indicator 0-2, and `check` agrees with
//! `respond` on what is answered.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webntpd::sync::leap::Leap;
use webntpd::sync::serve::Served;
use webntpd::sync::Timestamp;
use webntpd::wire::ntp::{check, kiss, read_reply, respond, Header, HEADER_LEN, MAX_REQUEST_LEN};

#[derive(Arbitrary, Debug)]
struct Input {
    datagram: Vec<u8>,
    received_ns: i64,
    transmit_ns: i64,
    stratum: u8,
    leap: u8,
    root_delay_ns: i64,
    root_dispersion_ns: i64,
    offset_ns: i64,
    sent: u64,
}

fuzz_target!(|input: Input| {
    let served = Served {
        leap: match input.leap % 4 {
            0 => Leap::NoWarning,
            1 => Leap::InsertSecond,
            2 => Leap::DeleteSecond,
            _ => Leap::Unsynchronised,
        },
        stratum: input.stratum,
        reference_id: *b"WNTP",
        reference_time: None,
        root_delay_ns: input.root_delay_ns,
        root_dispersion_ns: input.root_dispersion_ns,
        offset_ns: input.offset_ns,
        unsynchronised: None,
    };
    let d = &input.datagram;
    let received = Timestamp::from_nanos(i128::from(input.received_ns));
    let answered = respond(d, received, &served);
    assert_eq!(answered.is_ok(), check(d).is_ok());
    if let Ok(mut reply) = answered {
        assert!((HEADER_LEN..=MAX_REQUEST_LEN).contains(&d.len()));
        let req = Header::parse(d).unwrap();
        assert!(req.mode == 3 && (3..=4).contains(&req.version));
        let bytes = reply
            .stamp_transmit(Timestamp::from_nanos(i128::from(input.transmit_ns)))
            .to_vec();
        assert_eq!(bytes.len(), HEADER_LEN);
        let h = Header::parse(&bytes).unwrap();
        assert_eq!((h.mode, h.version, h.poll), (4, req.version, req.poll));
        assert_eq!(h.origin, req.transmit);
        let k = kiss(d, *b"RATE").unwrap();
        let kh = Header::parse(k.bytes()).unwrap();
        assert_eq!((kh.stratum, kh.reference_id, kh.leap), (0, *b"RATE", 3));
    } else {
        assert!(kiss(d, *b"RATE").is_err());
    }
    if let Ok(r) = read_reply(d, input.sent) {
        let h = r.header;
        assert_eq!((h.mode, h.origin), (4, input.sent));
        assert!((1..16).contains(&h.stratum) && h.leap < 3);
        assert!(h.receive != 0 && h.transmit != 0);
    }
});
