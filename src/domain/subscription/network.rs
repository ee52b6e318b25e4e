//! The pure decision whether a resolved address is an allowed webhook
//! destination (SPEC §7): internal ranges, and the networks an operator
//! allows with `--webhook-allow-cidr`. Resolving names is the caller's I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::UrlField;
use crate::domain::DomainError;

/// Whether `ip` is an address a public webhook should never point at:
/// loopback, private (RFC 1918), shared (CGNAT, 100.64.0.0/10), link-local,
/// unspecified or "this network" (0.0.0.0/8), IETF protocol assignments,
/// documentation and benchmarking ranges, multicast, reserved and broadcast;
/// for IPv6 also unique-local (fc00::/7), link-local (fe80::/10), the
/// deprecated site-local (fec0::/10), discard-only (100::/64), and IPv4
/// addresses embedded as mapped, compatible or NAT64 (64:ff9b::/96) ones.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_internal_v4(ip),
        IpAddr::V6(ip) => is_internal_v6(ip),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network", incl. unspecified
        || a == 10
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && (c == 0 || c == 2)) // IETF assignments, TEST-NET-1
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224 // multicast, reserved, broadcast
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_internal_v4(v4);
    }
    if s[..6] == [0; 6] {
        // Unspecified, loopback and IPv4-compatible (::a.b.c.d).
        return ip.is_unspecified() || ip.is_loopback() || is_internal_v4(embedded_v4(ip));
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix: the embedded IPv4 address is the target.
        return is_internal_v4(embedded_v4(ip));
    }
    (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || s[..4] == [0x100, 0, 0, 0] // discard-only
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
}

/// The IPv4 address in the last 32 bits.
fn embedded_v4(ip: Ipv6Addr) -> Ipv4Addr {
    let [.., a, b, c, d] = ip.octets();
    Ipv4Addr::new(a, b, c, d)
}

/// Internal networks an operator allows as webhook destinations
/// (`--webhook-allow-cidr`, SPEC §7). Empty by default: no internal address
/// is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    /// Parses CIDR networks (`10.0.0.0/8`, `fd00::/8`); a bare address
    /// (`192.168.1.10`) means that host alone. Surrounding spaces are
    /// ignored.
    pub fn parse(list: &[String]) -> Result<Self, DomainError> {
        list.iter()
            .map(|text| {
                let trimmed = text.trim();
                trimmed
                    .parse::<IpNet>()
                    .or_else(|_| trimmed.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| canonical(net.trunc()))
                    .map_err(|_| DomainError::InvalidAllowedNetwork(text.clone()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The allowed networks (IPv4-mapped IPv6 networks as IPv4 ones).
    pub fn networks(&self) -> &[IpNet] {
        &self.0
    }

    /// Whether a notification may be sent to `ip`: any public address, and
    /// an internal one only inside an allowed network. IPv4-mapped IPv6
    /// addresses are judged as the IPv4 address they carry.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        !is_internal(ip) || self.0.iter().any(|net| net.contains(&ip))
    }

    /// [`permits`](Self::permits) as a rule: a refused destination is an
    /// error naming the field and the address.
    pub fn check(&self, field: UrlField, ip: IpAddr) -> Result<(), DomainError> {
        if self.permits(ip) {
            Ok(())
        } else {
            Err(DomainError::NotificationUrlDestinationRefused { field, ip })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for text in [
            "127.0.0.1",
            "127.255.0.9",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
        ] {
            assert!(is_internal(ip(text)), "{text}");
        }
    }

    #[test]
    fn public_addresses_are_not_internal() {
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.254",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "fbff::1",
        ] {
            assert!(!is_internal(ip(text)), "{text}");
        }
    }

    #[test]
    fn without_allowed_networks_only_public_destinations_are_permitted() {
        let none = AllowedNetworks::default();
        assert!(none.permits(ip("93.184.216.34")));
        assert!(!none.permits(ip("10.0.0.5")));
        assert!(!none.permits(ip("::1")));
        let err = none
            .check(UrlField::Notification, ip("10.0.0.5"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "notificationUrl points at 10.0.0.5, an internal address; internal destinations are refused unless allowed with --webhook-allow-cidr"
        );
        assert_eq!(none.check(UrlField::Lifecycle, ip("8.8.8.8")), Ok(()));
    }

    #[test]
    fn allowed_networks_permit_internal_addresses_inside_them() {
        let allowed = AllowedNetworks::parse(&[
            "10.0.0.0/8".to_string(),
            " fd00::/8 ".to_string(),
            "192.168.1.10".to_string(),
        ])
        .unwrap();
        assert_eq!(allowed.networks().len(), 3);
        assert!(allowed.permits(ip("10.20.30.40")));
        assert!(allowed.permits(ip("::ffff:10.20.30.40")));
        assert!(allowed.permits(ip("fd00::5")));
        assert!(allowed.permits(ip("192.168.1.10")));
        assert!(!allowed.permits(ip("192.168.1.11")));
        assert!(!allowed.permits(ip("127.0.0.1")));
        assert!(allowed.permits(ip("8.8.8.8")));
    }

    #[test]
    fn a_network_with_host_bits_is_taken_as_its_network() {
        let allowed = AllowedNetworks::parse(&["10.1.2.3/8".to_string()]).unwrap();
        assert_eq!(allowed.networks(), ["10.0.0.0/8".parse::<IpNet>().unwrap()]);
    }

    #[test]
    fn a_bad_cidr_is_refused_by_name() {
        for bad in ["10.0.0.0/33", "10.0.0/8", "localhost", "", "fd00::/129"] {
            let err =
                AllowedNetworks::parse(&["10.0.0.0/8".to_string(), bad.to_string()]).unwrap_err();
            assert_eq!(err, DomainError::InvalidAllowedNetwork(bad.to_string()));
        }
        assert_eq!(
            DomainError::InvalidAllowedNetwork("10.0.0.0/33".to_string()).to_string(),
            "'10.0.0.0/33' is not a valid network; expected CIDR notation such as 10.0.0.0/8 or fd00::/8, or a single address"
        );
    }
}

/// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network
/// it means (`10.0.0.0/8`): [`AllowedNetworks::permits`] judges mapped
/// addresses as IPv4, so the rule must be IPv4 too.
fn canonical(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

#[cfg(test)]
mod mapped_tests {
    use super::*;

    #[test]
    fn an_ipv4_mapped_allow_rule_allows_the_ipv4_network() {
        let allowed = AllowedNetworks::parse(&["::ffff:10.0.0.0/104".to_string()]).unwrap();
        assert_eq!(allowed.networks()[0].to_string(), "10.0.0.0/8");
        assert!(allowed.permits("10.1.2.3".parse().unwrap()));
        assert!(allowed.permits("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!allowed.permits("192.168.1.1".parse().unwrap()));
    }
}
