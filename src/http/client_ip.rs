//! The client's address: the socket peer, unless the peer is a configured
//! trusted proxy, in which case the forwarding header those proxies write
//! (`X-Forwarded-For`, or RFC 7239 `Forwarded`: one, chosen by configuration)
//! is walked from the right, past trusted proxies, to the first address that
//! is not one. A forwarding header from anyone else, or the other header,
//! changes nothing.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};
use ipnet::IpNet;

/// Addresses and CIDR ranges whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    ranges: Vec<IpNet>,
    header: ForwardingHeader,
}

/// The one forwarding header trusted proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardingHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

impl TrustedProxies {
    /// The networks whose `header` is believed; IPv4-mapped IPv6 entries count as IPv4.
    pub fn new(networks: &[IpNet], header: ForwardingHeader) -> Self {
        let ranges = networks
            .iter()
            .map(|network| canonical_network(*network))
            .collect();
        Self { ranges, header }
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.ranges.iter().any(|network| network.contains(&address))
    }

    /// The client behind `peer`, as far as trusted proxies vouch for it.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer.ip());
        if !self.contains(client) {
            return client;
        }
        for hop in forwarded_chain(headers, self.header).into_iter().rev() {
            let Some(hop) = hop else { break };
            client = hop;
            if !self.contains(hop) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// `::ffff:10.0.0.0/104` is `10.0.0.0/8`: addresses are compared in their IPv4 form.
fn canonical_network(network: IpNet) -> IpNet {
    match network {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(network),
            None => network,
        },
        other => other,
    }
}

/// The hops named by the chosen header, left to right; `None` for a hop that
/// is not an address (`unknown`, obfuscated, garbage).
fn forwarded_chain(headers: &HeaderMap, header: ForwardingHeader) -> Vec<Option<IpAddr>> {
    if header == ForwardingHeader::XForwardedFor {
        return headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|hop| parse_hop(hop.trim()))
            .collect();
    }
    headers
        .get_all(header::FORWARDED)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.eq_ignore_ascii_case("for")
                    .then(|| parse_hop(value.trim().trim_matches('"')))
            })
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]`, `[::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Ok(socket) = hop.parse::<SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    hop.strip_prefix('[')?
        .split(']')
        .next()?
        .parse()
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn proxies_of(list: &str, header: ForwardingHeader) -> TrustedProxies {
        let networks: Vec<IpNet> = list
            .split(',')
            .map(str::trim)
            .map(|entry| match entry.parse::<IpNet>() {
                Ok(network) => network,
                Err(_) => IpNet::from(entry.parse::<IpAddr>().unwrap()),
            })
            .collect();
        TrustedProxies::new(&networks, header)
    }

    fn peer(address: &str) -> SocketAddr {
        SocketAddr::new(address.parse().unwrap(), 40000)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = proxies_of("10.0.0.0/8", ForwardingHeader::XForwardedFor);
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            proxies.client(peer("203.0.113.9"), &spoofed),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(peer("127.0.0.1"), &spoofed),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_proxies_are_walked_from_the_right() {
        let proxies = proxies_of("10.0.0.0/8, 192.168.1.7", ForwardingHeader::XForwardedFor);
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 192.168.1.7")]);
        // 6.6.6.6 was written by the client itself; the first untrusted hop from the right is the client.
        assert_eq!(
            proxies.client(peer("10.1.2.3"), &chain),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
        let forwarded = headers(&[(
            "forwarded",
            "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.2",
        )]);
        let rfc_7239 = proxies_of("10.0.0.0/8, 192.168.1.7", ForwardingHeader::Forwarded);
        assert_eq!(
            rfc_7239.client(peer("10.1.2.3"), &forwarded),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        let garbage = headers(&[("x-forwarded-for", "not-an-address")]);
        assert_eq!(
            proxies.client(peer("10.1.2.3"), &garbage),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn only_the_header_the_proxies_write_is_read() {
        // The proxy writes Forwarded and passes the client's own X-Forwarded-For through.
        let both = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=198.51.100.4"),
        ]);
        let rfc_7239 = proxies_of("10.0.0.0/8", ForwardingHeader::Forwarded);
        assert_eq!(
            rfc_7239.client(peer("10.1.2.3"), &both),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
        let only_xff = headers(&[("forwarded", "for=198.51.100.4")]);
        let xff = proxies_of("10.0.0.0/8", ForwardingHeader::XForwardedFor);
        assert_eq!(
            xff.client(peer("10.1.2.3"), &only_xff),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ranges_parse_and_match() {
        let proxies = proxies_of("127.0.0.1/32,::1,fd00::/8", ForwardingHeader::XForwardedFor);
        assert!(proxies.contains("127.0.0.1".parse().unwrap()));
        assert!(proxies.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(proxies.contains("fd12::5".parse().unwrap()));
        assert!(!proxies.contains("127.0.0.2".parse().unwrap()));
        let mapped = proxies_of("::ffff:10.0.0.0/104", ForwardingHeader::XForwardedFor);
        assert!(mapped.contains("10.9.9.9".parse().unwrap()));
        assert!(
            proxies_of("0.0.0.0/0", ForwardingHeader::XForwardedFor)
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}
