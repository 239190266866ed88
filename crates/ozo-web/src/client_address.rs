//! The address of the client that sent a request, which the rate limits and the login
//! throttle count by.
//!
//! Without trusted proxies it is the TCP peer. Behind a reverse proxy or an HTTP load
//! balancer, the peer is the proxy, and the proxy appends the address it received the
//! request from to `X-Forwarded-For`. Only a proxy listed in `trusted_proxies` is
//! believed: the client is the last address in that header, read from the right, that is
//! not itself a trusted proxy. A client can put any address in the header, but only to
//! the left of what the trusted proxies added, where it is never read.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use crate::{ApiError, AppState};

/// The address the rate limits count a request by.
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            return Err(ApiError::Internal(anyhow::anyhow!("the router was served without the peer's address")));
        };
        Ok(ClientAddress(client_address(peer.ip(), &parts.headers, &state.settings().trusted_proxies)))
    }
}

/// Returns the client's address of a request from `peer` with `headers`.
///
/// An entry of `X-Forwarded-For` that is not an address (`unknown`, say) ends the
/// reading: the address read before it, a trusted proxy, counts as the client. So does
/// the leftmost entry when every entry is a trusted proxy.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let trusted = |address: IpAddr| trusted_proxies.iter().any(|network| network.contains(&address));
    let mut client = peer.to_canonical();
    if !trusted(client) {
        return client;
    }

    // Each proxy appends to the last header or adds a header after the others, so the
    // entries in order, rightmost last, are the headers' lists one after the other.
    let entries: Vec<Option<IpAddr>> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(list) => list.split(',').map(forwarded_address).collect(),
            Err(_) => vec![None],
        })
        .collect();
    for entry in entries.into_iter().rev() {
        let Some(address) = entry else { return client };
        client = address;
        if !trusted(client) {
            return client;
        }
    }
    client
}

/// Reads one entry of `X-Forwarded-For`: an address, or an address with a port as some
/// proxies write it (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let address = entry.parse::<IpAddr>().or_else(|_| entry.parse::<SocketAddr>().map(|socket| socket.ip())).ok()?;
    Some(address.to_canonical())
}

/// Reads an entry of `trusted_proxies`: a network such as `10.0.0.0/8`, or one address.
pub fn parse_trusted_proxy(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry.parse::<IpNet>().ok().or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn proxies() -> Vec<IpNet> {
        ["10.0.0.0/8", "130.211.0.0/22", "2001:db8::/32"]
            .iter()
            .map(|entry| parse_trusted_proxy(entry).unwrap())
            .collect()
    }

    #[test]
    fn peer_counts_unless_trusted() {
        let headers = forwarded(&["198.51.100.7"]);
        assert_eq!(client_address(address("203.0.113.9"), &headers, &proxies()), address("203.0.113.9"));
        assert_eq!(client_address(address("10.1.2.3"), &headers, &[]), address("10.1.2.3"));
        assert_eq!(client_address(address("10.1.2.3"), &headers, &proxies()), address("198.51.100.7"));
        assert_eq!(client_address(address("10.1.2.3"), &HeaderMap::new(), &proxies()), address("10.1.2.3"));
    }

    #[test]
    fn rightmost_untrusted_entry_counts() {
        // The client wrote the first entry itself; the load balancer and an inner proxy
        // appended the others.
        let headers = forwarded(&["192.0.2.66, 198.51.100.7", "130.211.1.1"]);
        assert_eq!(client_address(address("10.1.2.3"), &headers, &proxies()), address("198.51.100.7"));
        let headers = forwarded(&["10.9.9.9, 130.211.0.5"]);
        assert_eq!(client_address(address("10.1.2.3"), &headers, &proxies()), address("10.9.9.9"));
    }

    #[test]
    fn unreadable_entry_ends_reading() {
        let headers = forwarded(&["198.51.100.7, unknown, 130.211.1.1"]);
        assert_eq!(client_address(address("10.1.2.3"), &headers, &proxies()), address("130.211.1.1"));
        let headers = forwarded(&["198.51.100.7,"]);
        assert_eq!(client_address(address("10.1.2.3"), &headers, &proxies()), address("10.1.2.3"));
    }

    #[test]
    fn ports_and_mapped_addresses() {
        let headers = forwarded(&["[2001:db9::5]:4711, 198.51.100.7:80"]);
        assert_eq!(client_address(address("10.1.2.3"), &headers, &proxies()), address("198.51.100.7"));
        let headers = forwarded(&["[2001:db9::5]:4711, 2001:db8::1"]);
        assert_eq!(client_address(address("::ffff:10.1.2.3"), &headers, &proxies()), address("2001:db9::5"));
    }

    #[test]
    fn trusted_proxy_entries() {
        assert_eq!(parse_trusted_proxy(" 35.191.0.0/16 "), Some("35.191.0.0/16".parse().unwrap()));
        assert_eq!(parse_trusted_proxy("127.0.0.1"), Some("127.0.0.1/32".parse().unwrap()));
        assert_eq!(parse_trusted_proxy("::1"), Some("::1/128".parse().unwrap()));
        assert_eq!(parse_trusted_proxy("10.0.0.0/33"), None);
        assert_eq!(parse_trusted_proxy("load-balancer.internal"), None);
    }
}
