//! The client's address: the socket peer, unless the peer is a configured
//! trusted proxy, in which case the forwarding header those proxies write
//! (`X-Forwarded-For`, or RFC 7239 `Forwarded`: one, chosen by configuration)
//! is walked from the right, past trusted proxies, to the first address that
//! is not one. A forwarding header from anyone else, or the other header,
//! changes nothing.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};

/// Addresses and CIDR ranges whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    ranges: Vec<(IpAddr, u8)>,
    header: ForwardingHeader,
}

/// The one forwarding header trusted proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardingHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

impl ForwardingHeader {
    /// `x-forwarded-for` or `forwarded`, in any case.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            _ => Err(format!("{name:?} is neither x-forwarded-for nor forwarded")),
        }
    }
}

impl TrustedProxies {
    /// Parses `"10.0.0.0/8, 192.168.1.7, ::1"`; `header` is the one they write.
    pub fn parse(list: &str, header: ForwardingHeader) -> Result<Self, String> {
        let ranges = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(parse_range)
            .collect::<Result<_, _>>()?;
        Ok(Self { ranges, header })
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.ranges
            .iter()
            .any(|(network, prefix)| in_range(address, *network, *prefix))
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

fn parse_range(entry: &str) -> Result<(IpAddr, u8), String> {
    let (address, prefix) = match entry.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (entry, None),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{entry:?} is not an address or CIDR range"))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        Some(prefix) => prefix.parse::<u8>().ok().filter(|prefix| *prefix <= max),
        None => Some(max),
    }
    .ok_or_else(|| format!("{entry:?} has an invalid prefix length"))?;
    Ok((canonical(address), prefix))
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

fn in_range(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(address), IpAddr::V4(network)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(address) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(address), IpAddr::V6(network)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(address) & mask == u128::from(network) & mask
        }
        _ => false,
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

    fn peer(address: &str) -> SocketAddr {
        SocketAddr::new(address.parse().unwrap(), 40000)
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let proxies = TrustedProxies::parse("10.0.0.0/8", ForwardingHeader::XForwardedFor).unwrap();
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
        let proxies =
            TrustedProxies::parse("10.0.0.0/8, 192.168.1.7", ForwardingHeader::XForwardedFor)
                .unwrap();
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
        let rfc_7239 =
            TrustedProxies::parse("10.0.0.0/8, 192.168.1.7", ForwardingHeader::Forwarded).unwrap();
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
        let rfc_7239 = TrustedProxies::parse("10.0.0.0/8", ForwardingHeader::Forwarded).unwrap();
        assert_eq!(
            rfc_7239.client(peer("10.1.2.3"), &both),
            "198.51.100.4".parse::<IpAddr>().unwrap()
        );
        let only_xff = headers(&[("forwarded", "for=198.51.100.4")]);
        let xff = TrustedProxies::parse("10.0.0.0/8", ForwardingHeader::XForwardedFor).unwrap();
        assert_eq!(
            xff.client(peer("10.1.2.3"), &only_xff),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
        assert!(ForwardingHeader::parse("x-real-ip").is_err());
        assert_eq!(
            ForwardingHeader::parse("Forwarded"),
            Ok(ForwardingHeader::Forwarded)
        );
    }

    #[test]
    fn ranges_parse_and_match() {
        let proxies =
            TrustedProxies::parse("127.0.0.1/32,::1,fd00::/8", ForwardingHeader::XForwardedFor)
                .unwrap();
        assert!(proxies.contains("127.0.0.1".parse().unwrap()));
        assert!(proxies.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(proxies.contains("fd12::5".parse().unwrap()));
        assert!(!proxies.contains("127.0.0.2".parse().unwrap()));
        assert!(TrustedProxies::parse("10.0.0.0/33", ForwardingHeader::XForwardedFor).is_err());
        assert!(TrustedProxies::parse("proxy.example", ForwardingHeader::XForwardedFor).is_err());
        assert!(
            TrustedProxies::parse("0.0.0.0/0", ForwardingHeader::XForwardedFor)
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}
