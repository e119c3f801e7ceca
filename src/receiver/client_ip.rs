//! Who is calling: the peer address, or, when the peer is a trusted proxy, the address it
//! forwarded in `X-Forwarded-For`; and whether a source's allow-list admits it. Only proxies
//! the operator listed are believed: anyone else can write any `X-Forwarded-For`.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address a request comes from, after trusted proxies.
///
/// `X-Forwarded-For` lists the client, then each proxy that forwarded it; the last hop is the
/// peer itself. Walking from the right, every address that is a trusted proxy is skipped; the
/// first that is not is the client. A malformed entry stops the walk at the last good one.
pub(super) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(address) = hop.trim().parse::<IpAddr>().map(canonical) else { break };
        client = address;
        if !trusted.iter().any(|net| net.contains(&address)) {
            break;
        }
    }
    client
}

/// Whether `ip` is admitted by `allow` (an empty list admits everyone).
pub(super) fn allowed(ip: IpAddr, allow: &[IpNet]) -> bool {
    allow.is_empty() || allow.iter().any(|net| net.contains(&ip))
}

/// `::ffff:1.2.3.4` is `1.2.3.4`, so IPv4 ranges match on dual-stack sockets.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/24"]);
        let headers = xff("203.0.113.9, 10.0.0.7");
        assert_eq!(client_ip(proxy, &headers, &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        assert_eq!(client_ip(proxy, &xff("garbage"), &trusted), proxy);
        assert_eq!(
            client_ip(proxy, &xff("2001:db8::5"), &trusted),
            "2001:db8::5".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn allow_lists_match_v4_v6_and_mapped_addresses() {
        let allow = nets(&["203.0.113.0/24", "2001:db8::/32"]);
        assert!(allowed("203.0.113.200".parse().unwrap(), &allow));
        assert!(allowed("2001:db8::1".parse().unwrap(), &allow));
        assert!(!allowed("198.51.100.1".parse().unwrap(), &allow));
        assert!(allowed(canonical("::ffff:203.0.113.5".parse().unwrap()), &allow));
        assert!(allowed("198.51.100.1".parse().unwrap(), &[]));
    }
}
