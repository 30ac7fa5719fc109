//! Who the NTP server answers: `allow` and `deny` lists of address blocks (CIDR), decided per
//! datagram by the most specific entry that contains the client's address. Pure: addresses
//! in, a yes or no out.
//!
//! The rule: the longest prefix among the `allow` and `deny` entries that contains the
//! address decides (a `deny` wins over an `allow` of the same length), as chrony's
//! `allow`/`deny` do; an address no entry contains is allowed only when there are no
//! `allow` entries at all. So `deny = ["10.1.0.0/16"]` alone answers everyone but that
//! block, `allow = ["192.168.0.0/16"]` alone answers only that block, and both together
//! can carve exceptions out of exceptions. IPv4 clients reaching an IPv6 socket
//! (`::ffff:192.0.2.1`) are judged as the IPv4 address they are.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

/// An address block: an address and the number of leading bits that must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The address in IPv6 form (IPv4 as `::ffff:a.b.c.d`).
    bits: u128,
    /// Leading bits compared, of the IPv6 form (an IPv4 `/n` is `/96+n`).
    prefix: u8,
    /// Written as IPv4, for display.
    v4: bool,
}

/// An address as the 128 bits access and rate limiting key it by: IPv4 (and IPv4-mapped
/// IPv6) as `::ffff:a.b.c.d`.
pub fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl Cidr {
    /// Whether `key` ([`key`]) lies in this block.
    pub fn contains(&self, key: u128) -> bool {
        let mask = match self.prefix {
            0 => 0,
            p => u128::MAX << (128 - u32::from(p)),
        };
        key & mask == self.bits
    }

    /// The prefix length as written (IPv4: 0-32).
    pub fn prefix_len(&self) -> u8 {
        if self.v4 {
            self.prefix - 96
        } else {
            self.prefix
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `192.168.0.0/16`, `2001:db8::/32`, or one address (`10.0.0.1`, `::1`). An address with
    /// bits set past the prefix is refused: `192.168.1.5/24` is a typo for one of two things.
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            format!(
                "`{s}`: expected an address or an address block, e.g. 192.168.0.0/16, \
                 10.0.0.1 or 2001:db8::/32"
            )
        })?;
        // An IPv4-mapped IPv6 block is an IPv4 block.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        let prefix = if ip.is_ipv4() { len + 96 } else { len };
        let cidr = Cidr {
            bits: key(ip),
            prefix,
            v4: ip.is_ipv4(),
        };
        if !cidr.contains(cidr.bits) {
            let network = Cidr {
                bits: cidr.bits & (u128::MAX << (128 - u32::from(prefix))),
                ..cidr
            };
            return Err(format!(
                "`{s}` has bits set past its /{len} prefix: write {network} for the block, or \
                 {addr} alone for the one address"
            ));
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v6 = Ipv6Addr::from(self.bits);
        match (self.v4, v6.to_ipv4_mapped()) {
            (true, Some(v4)) => write!(f, "{v4}/{}", self.prefix_len()),
            _ => write!(f, "{v6}/{}", self.prefix_len()),
        }
    }
}

/// The `allow` and `deny` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    /// Every entry, `true` for allow, longest prefix first (deny before allow on a tie).
    rules: Vec<(Cidr, bool)>,
    /// Whether any entry is an `allow`.
    any_allow: bool,
}

impl AccessList {
    /// From the `allow` and `deny` entries.
    pub fn new(allow: &[Cidr], deny: &[Cidr]) -> AccessList {
        let mut rules: Vec<(Cidr, bool)> = allow
            .iter()
            .map(|c| (*c, true))
            .chain(deny.iter().map(|c| (*c, false)))
            .collect();
        // Longest prefix first; on a tie, deny (false) first.
        rules.sort_by_key(|(c, allow)| (std::cmp::Reverse(c.prefix), *allow));
        AccessList {
            any_allow: !allow.is_empty(),
            rules,
        }
    }

    /// Whether `ip` is answered (see the module comment).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let k = key(ip);
        self.rules
            .iter()
            .find(|(c, _)| c.contains(k))
            .map_or(!self.any_allow, |(_, allow)| *allow)
    }
}

/// The loopback blocks, for messages and defaults: `127.0.0.0/8` and `::1`.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_print() {
        for (text, shown) in [
            ("192.168.0.0/16", "192.168.0.0/16"),
            ("10.0.0.1", "10.0.0.1/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::1", "::1/128"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("::/0", "::/0"),
            ("::ffff:10.0.0.0/8", "10.0.0.0/8"),
        ] {
            assert_eq!(text.parse::<Cidr>().unwrap().to_string(), shown, "{text}");
        }
        let e = "192.168.1.5/24".parse::<Cidr>().unwrap_err();
        assert!(e.contains("write 192.168.1.0/24"), "{e}");
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "host.example",
            "10.0.0.0/x",
            "10/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn with_no_lists_everyone_is_answered() {
        let a = AccessList::default();
        assert!(a.allows(ip("192.0.2.1")) && a.allows(ip("2001:db8::1")));
    }

    #[test]
    fn allow_alone_answers_only_its_blocks() {
        let a = AccessList::new(&cidrs(&["192.168.0.0/16", "::1"]), &[]);
        assert!(a.allows(ip("192.168.3.4")));
        assert!(a.allows(ip("::1")));
        assert!(!a.allows(ip("10.0.0.1")));
        assert!(!a.allows(ip("::2")));
        // An IPv4 client on an IPv6 socket is the IPv4 address it is.
        assert!(a.allows(ip("::ffff:192.168.3.4")));
    }

    #[test]
    fn deny_alone_answers_everyone_else() {
        let a = AccessList::new(&[], &cidrs(&["10.1.0.0/16"]));
        assert!(!a.allows(ip("10.1.2.3")));
        assert!(!a.allows(ip("::ffff:10.1.2.3")));
        assert!(a.allows(ip("10.2.0.1")));
        assert!(a.allows(ip("2001:db8::1")));
    }

    #[test]
    fn the_most_specific_entry_decides_and_deny_wins_a_tie() {
        let a = AccessList::new(
            &cidrs(&["10.0.0.0/8", "10.1.2.0/24"]),
            &cidrs(&["10.1.0.0/16", "10.0.0.0/8"]),
        );
        // /8 allowed and denied: deny wins the tie.
        assert!(!a.allows(ip("10.9.9.9")));
        // /16 deny, /24 allow inside it.
        assert!(!a.allows(ip("10.1.3.1")));
        assert!(a.allows(ip("10.1.2.1")));
        // Outside every block, with an allow list: not answered.
        assert!(!a.allows(ip("192.0.2.1")));
        let everyone_but = AccessList::new(&cidrs(&["0.0.0.0/0", "::/0"]), &cidrs(&["127.0.0.2"]));
        assert!(everyone_but.allows(ip("127.0.0.1")));
        assert!(!everyone_but.allows(ip("127.0.0.2")));
    }

    #[test]
    fn loopback_in_both_families() {
        assert!(is_loopback(ip("127.0.0.5")));
        assert!(is_loopback(ip("::1")));
        assert!(is_loopback(ip("::ffff:127.0.0.1")));
        assert!(!is_loopback(ip("192.0.2.1")));
    }
}
