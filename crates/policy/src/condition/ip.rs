//! `IpAddress` / `NotIpAddress`: IPv4 and IPv6 addresses and CIDR ranges.
//!
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IPAddress>

use std::net::IpAddr;

/// A CIDR range (an address without `/n` is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: u128,
    prefix: u8,
    v6: bool,
}

fn normalize(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), false),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => (u128::from(u32::from(v4)), false),
            None => (u128::from(a), true),
        },
    }
}

fn mask(prefix: u8, v6: bool) -> u128 {
    let bits: u32 = if v6 { 128 } else { 32 };
    let p = u32::from(prefix).min(bits);
    if p == 0 {
        0
    } else {
        let all = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        all & !((1u128 << (bits - p)) - 1)
    }
}

impl Cidr {
    /// Parses `203.0.113.0/24`, `2001:db8::/32` or a bare address.
    pub fn parse(s: &str) -> Option<Self> {
        let t = s.trim();
        let (addr, prefix) = match t.split_once('/') {
            Some((a, p)) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (a, Some(p.parse::<u8>().ok()?))
            }
            None => (t, None),
        };
        let ip: IpAddr = addr.parse().ok()?;
        let is_v6_text = matches!(ip, IpAddr::V6(_));
        let (bits, v6) = normalize(ip);
        let max = if is_v6_text { 128 } else { 32 };
        let mut prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        if is_v6_text && !v6 {
            // `::ffff:a.b.c.d/n` names IPv4 space.
            prefix = prefix.saturating_sub(96);
        }
        Some(Self {
            addr: bits & mask(prefix, v6),
            prefix,
            v6,
        })
    }

    /// Whether the request address `ip` is inside the range.
    pub fn contains_str(&self, ip: &str) -> bool {
        match ip.trim().parse::<IpAddr>() {
            Ok(a) => self.contains(a),
            Err(_) => false,
        }
    }

    /// The prefix length (0 for `0.0.0.0/0` and `::/0`, which match everything).
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether the range is IPv6 space (`::ffff:a.b.c.d/n` names IPv4 space, as requests from
    /// IPv4-mapped addresses are matched as IPv4).
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    /// The first and last address of the range, as integers of its family.
    pub fn bounds(&self) -> (u128, u128) {
        let host = if self.v6 {
            !mask(self.prefix, true)
        } else {
            u128::from(u32::MAX) & !mask(self.prefix, false)
        };
        (self.addr, self.addr | host)
    }

    /// Whether `ip` is inside the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (bits, v6) = normalize(ip);
        v6 == self.v6 && bits & mask(self.prefix, v6) == self.addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4() {
        let c = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(c.contains_str("203.0.113.42"));
        assert!(!c.contains_str("203.0.114.1"));
        assert!(Cidr::parse("203.0.113.42/32")
            .unwrap()
            .contains_str("203.0.113.42"));
        assert!(!Cidr::parse("203.0.113.42/32")
            .unwrap()
            .contains_str("203.0.113.43"));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains_str("8.8.8.8"));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains_str("::1"));
        assert!(Cidr::parse("10.1.2.3").unwrap().contains_str("10.1.2.3"));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0/8").is_none());
        assert!(Cidr::parse("10.0.0.0/").is_none());
        assert!(!c.contains_str("not-an-ip"));
    }

    #[test]
    fn bounds() {
        let b = |s: &str| Cidr::parse(s).unwrap().bounds();
        assert_eq!(b("10.0.0.0/8"), (0x0a00_0000, 0x0aff_ffff));
        assert_eq!(b("0.0.0.0/0"), (0, 0xffff_ffff));
        assert_eq!(b("203.0.113.7"), (0xcb00_7107, 0xcb00_7107));
        assert_eq!(b("::/0"), (0, u128::MAX));
        assert_eq!(b("8000::/1"), (1 << 127, u128::MAX));
        // IPv4-mapped space is IPv4.
        let mapped = Cidr::parse("::ffff:0.0.0.0/96").unwrap();
        assert!(!mapped.is_v6());
        assert_eq!(mapped.bounds(), (0, 0xffff_ffff));
    }

    #[test]
    fn v6() {
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains_str("2001:db8:1::5"));
        assert!(!c.contains_str("2001:db9::1"));
        assert!(!c.contains_str("203.0.113.1"));
        assert!(Cidr::parse("::/0").unwrap().contains_str("::1"));
        assert!(Cidr::parse("2001:db8::/129").is_none());
        // IPv4-mapped request addresses are IPv4
        assert!(Cidr::parse("203.0.113.0/24")
            .unwrap()
            .contains_str("::ffff:203.0.113.9"));
    }
}
