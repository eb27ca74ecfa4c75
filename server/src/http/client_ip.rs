//! The client's address. `X-Forwarded-For` is believed only when the socket's peer is one of
//! `http.trusted_proxies`, and then read from the right, skipping trusted hops: the rightmost
//! address a trusted proxy did not add itself is the first one a client could not forge.

use std::net::IpAddr;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpAddr>);

impl TrustedProxies {
    /// The client address for a request from `peer` carrying `forwarded_for` (the
    /// `X-Forwarded-For` header values, in order).
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: &[&str]) -> Option<IpAddr> {
        // A dual-stack listener shows an IPv4 proxy as ::ffff:a.b.c.d.
        let peer = peer?.to_canonical();
        if !self.0.contains(&peer) {
            return Some(peer);
        }
        // From the right: every hop a trusted proxy added is skipped; the first one that is not
        // trusted is the client. An entry that does not parse ends the walk at the last trusted
        // address: going further left would believe what the client wrote itself.
        let mut last_trusted = peer;
        for hop in forwarded_for.iter().rev().flat_map(|h| h.rsplit(',')) {
            let Some(ip) = parse_hop(hop) else { return Some(last_trusted) };
            if !self.0.contains(&ip) {
                return Some(ip);
            }
            last_trusted = ip;
        }
        Some(last_trusted)
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`), canonical.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(ip.to_canonical())
}

/// The client address of a request, by the configured trusted proxies.
pub fn of_request(req: &actix_web::HttpRequest) -> Option<IpAddr> {
    let forwarded: Vec<&str> =
        req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
    let peer = req.peer_addr().map(|a| a.ip());
    match req.app_data::<actix_web::web::Data<TrustedProxies>>() {
        Some(t) => t.client_ip(peer, &forwarded),
        None => peer.map(|p| p.to_canonical()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let t = TrustedProxies(vec![ip("10.0.0.1"), ip("10.0.0.2")]);
        // Directly connected client: its header is ignored (it could say anything).
        assert_eq!(t.client_ip(Some(ip("203.0.113.9")), &["1.2.3.4"]), Some(ip("203.0.113.9")));
        // Through a trusted proxy: the rightmost untrusted hop.
        assert_eq!(t.client_ip(Some(ip("10.0.0.1")), &["1.2.3.4, 198.51.100.7"]), Some(ip("198.51.100.7")));
        // Through two trusted proxies, the spoofed left part is skipped.
        assert_eq!(
            t.client_ip(Some(ip("10.0.0.1")), &["6.6.6.6, 198.51.100.7", "10.0.0.2"]),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(t.client_ip(Some(ip("10.0.0.1")), &[]), Some(ip("10.0.0.1")));
        assert_eq!(t.client_ip(Some(ip("10.0.0.1")), &["garbage"]), Some(ip("10.0.0.1")));
        // All hops trusted: the leftmost of them.
        assert_eq!(t.client_ip(Some(ip("10.0.0.1")), &["10.0.0.2"]), Some(ip("10.0.0.2")));
    }

    #[test]
    fn an_unreadable_hop_ends_the_walk_instead_of_letting_the_client_choose_its_address() {
        let t = TrustedProxies(vec![ip("10.0.0.1")]);
        // The proxy appended the client with a port; what is left of it is the client's.
        assert_eq!(
            t.client_ip(Some(ip("10.0.0.1")), &["6.6.6.6, 198.51.100.7:4711"]),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            t.client_ip(Some(ip("10.0.0.1")), &["6.6.6.6, [2001:db8::7]:443"]),
            Some(ip("2001:db8::7"))
        );
        // An entry the proxy wrote that does not parse: not the forged one to its left.
        assert_eq!(t.client_ip(Some(ip("10.0.0.1")), &["6.6.6.6, unknown"]), Some(ip("10.0.0.1")));
        // A proxy seen through a dual-stack listener is still the trusted proxy.
        assert_eq!(t.client_ip(Some(ip("::ffff:10.0.0.1")), &["198.51.100.7"]), Some(ip("198.51.100.7")));
        assert_eq!(TrustedProxies::default().client_ip(None, &[]), None);
    }
}
