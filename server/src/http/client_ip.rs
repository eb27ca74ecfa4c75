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
        let peer = peer?;
        if !self.0.contains(&peer) {
            return Some(peer);
        }
        let hops: Vec<IpAddr> =
            forwarded_for.iter().flat_map(|h| h.split(',')).filter_map(|s| s.trim().parse().ok()).collect();
        // All trusted (or none given): the leftmost known hop, else the proxy itself.
        Some(hops.iter().rev().find(|ip| !self.0.contains(ip)).or(hops.first()).copied().unwrap_or(peer))
    }
}

/// The client address of a request, by the configured trusted proxies.
pub fn of_request(req: &actix_web::HttpRequest) -> Option<IpAddr> {
    let forwarded: Vec<&str> =
        req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
    let peer = req.peer_addr().map(|a| a.ip());
    match req.app_data::<actix_web::web::Data<TrustedProxies>>() {
        Some(t) => t.client_ip(peer, &forwarded),
        None => peer,
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
        assert_eq!(TrustedProxies::default().client_ip(None, &[]), None);
    }
}
