//! Listen addresses (`--listen`, `--metrics-listen`): an IP socket address
//! such as `127.0.0.1:8080` or `[::1]:8080`, or a host name and port such as
//! `localhost:8080`, resolved when the listener is bound.
//!
//! A host name is bound to the first of its addresses that can be bound, in
//! the resolver's order (`/etc/hosts`, `gai.conf`), as `std`'s and Tokio's
//! `bind` do; not to all of them: one listener gives one URL to print and
//! one `@odata.context` base, and a client given the name tries each of its
//! addresses anyway. Whoever wants both families on one port listens on
//! `[::]:PORT` (dual-stack on Linux by default).

use std::fmt;
use std::net::SocketAddr;

/// Where to listen, as given: validated syntax, not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// An IP address and port; bound as is.
    Ip(SocketAddr),
    /// A host name and port, resolved by [`ListenAddr::bind`].
    Host {
        /// The host name, e.g. `localhost`.
        host: String,
        /// The port; 0 picks a free one.
        port: u16,
    },
}

impl ListenAddr {
    /// Parses `HOST:PORT` where HOST is an IP address (IPv6 in brackets) or
    /// a host name. `None` for anything else (no port, a port that is not a
    /// number from 0 to 65535, an empty host or one with characters no host
    /// name has).
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Some(Self::Ip(addr));
        }
        let (host, port) = text.rsplit_once(':')?;
        let port = port.parse::<u16>().ok()?;
        let is_name = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        is_name.then(|| Self::Host {
            host: host.to_owned(),
            port,
        })
    }

    /// The IP address, when one was given rather than a name.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Self::Ip(addr) => Some(addr.ip()),
            Self::Host { .. } => None,
        }
    }

    /// Resolves (a host name) and binds a listener on the first address
    /// that can be bound, IPv4 addresses before IPv6 ones (see
    /// [`ipv4_first`]); `flag` names the option in error messages. An
    /// unresolvable name, a name without addresses and a refused bind are
    /// errors that say which.
    pub async fn bind(&self, flag: &str) -> anyhow::Result<tokio::net::TcpListener> {
        let addrs: Vec<SocketAddr> = match self {
            Self::Ip(addr) => vec![*addr],
            Self::Host { host, port } => ipv4_first(
                tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot resolve the host name '{host}' ({flag} {self}): {e}"
                        )
                    })?
                    .collect(),
            ),
        };
        let mut last_error = None;
        for addr in &addrs {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => return Ok(listener),
                Err(e) => last_error = Some((addr, e)),
            }
        }
        match last_error {
            Some((addr, e)) if addrs.len() == 1 => {
                anyhow::bail!("cannot listen on {addr} ({flag} {self}): {e}")
            }
            Some((addr, e)) => anyhow::bail!(
                "cannot listen on any of the {} addresses of {self} ({flag}); the last, {addr}: {e}",
                addrs.len()
            ),
            None => anyhow::bail!("the host name of {self} ({flag}) has no addresses"),
        }
    }
}

/// `addrs` with the IPv4 ones first, each family in the resolver's order.
/// glibc puts `::1` before `127.0.0.1` for `localhost` where `/etc/hosts`
/// lists both (Debian's default), and a server bound to `[::1]` only would
/// not answer at `http://127.0.0.1:8080`, the CLI's default `--url`.
fn ipv4_first(mut addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    addrs.sort_by_key(SocketAddr::is_ipv6);
    addrs
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(addr) => write!(f, "{addr}"),
            Self::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_and_host_names_with_a_port_parse() {
        assert_eq!(
            ListenAddr::parse("127.0.0.1:8080"),
            Some(ListenAddr::Ip("127.0.0.1:8080".parse().unwrap()))
        );
        assert_eq!(
            ListenAddr::parse("[::1]:0"),
            Some(ListenAddr::Ip("[::1]:0".parse().unwrap()))
        );
        assert_eq!(
            ListenAddr::parse("localhost:8080"),
            Some(ListenAddr::Host {
                host: "localhost".into(),
                port: 8080
            })
        );
        assert_eq!(
            ListenAddr::parse("presence-1.internal.example:9090")
                .unwrap()
                .to_string(),
            "presence-1.internal.example:9090"
        );
    }

    #[test]
    fn text_that_is_no_host_and_port_is_refused() {
        for bad in [
            "localhost",
            "localhost:",
            ":8080",
            "localhost:99999",
            "localhost:http",
            "::1:8080",
            "local host:8080",
            "http://localhost:8080",
        ] {
            assert_eq!(ListenAddr::parse(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn localhost_binds_a_loopback_address() {
        let listener = ListenAddr::parse("localhost:0")
            .unwrap()
            .bind("--listen")
            .await
            .unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
    }

    /// A name no resolver can look up, refused by the C library before any
    /// query is sent (a DNS label is at most 63 bytes), so the test sends
    /// no traffic off the machine.
    fn unresolvable_name() -> String {
        format!("{}.invalid", "x".repeat(64))
    }

    #[tokio::test]
    async fn an_unresolvable_name_is_an_error_naming_it() {
        let name = unresolvable_name();
        let e = ListenAddr::parse(&format!("{name}:8080"))
            .unwrap()
            .bind("--listen")
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("cannot resolve the host name '{name}'"))
                && text.contains("--listen"),
            "{text}"
        );
    }

    #[test]
    fn ipv4_addresses_come_first_in_resolver_order() {
        let addrs: Vec<SocketAddr> = ["[::1]:80", "127.0.0.1:80", "[::2]:80", "127.0.0.2:80"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let sorted: Vec<String> = ipv4_first(addrs).iter().map(ToString::to_string).collect();
        assert_eq!(
            sorted,
            ["127.0.0.1:80", "127.0.0.2:80", "[::1]:80", "[::2]:80"]
        );
    }
}
