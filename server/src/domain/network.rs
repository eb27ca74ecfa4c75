//! Which addresses count as one client for a per-address limit.

use std::net::{IpAddr, Ipv6Addr};

/// The unit a per-address limit counts: an IPv4 address, or the /64 of an IPv6 one (one
/// subscriber's network, whose addresses are theirs to rotate). An IPv4 client on a
/// dual-stack listener arrives as `::ffff:a.b.c.d` and counts as that IPv4 address.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}
