//! Where `spec.notify` may send CloudEvents: the admin-owned destination
//! policy (`notify` in the operator's config). The operator POSTs from
//! inside the cluster, so without a policy any tenant could make it reach
//! what they cannot reach themselves: the API server, cloud metadata
//! endpoints, other tenants' Services. Pure.
//!
//! - Always refused: loopback, link-local (169.254/16, fe80::/10, where
//!   cloud metadata lives), unspecified, multicast and broadcast addresses.
//! - Refused as internal: `internalCIDRs`, which should hold the cluster's
//!   service and pod ranges; by default every private range (10/8,
//!   172.16/12, 192.168/16, 100.64/10, fc00::/7), which contains them on
//!   nearly every cluster.
//! - `allowedDestinations` (host names, `*.domain` wildcards, IPs, CIDRs)
//!   are allowed even when they fall in the ranges above: an admin's
//!   explicit choice, e.g. an in-cluster ResultsDB Service.
//! - Anything else ("public") is allowed unless `allowPublic: false`.
//!
//! IP literals are checked when the run is validated; host names when the
//! operator connects (every resolved address is checked, and only allowed
//! ones are dialled), so a name that resolves to an internal address fails
//! its delivery instead.

use std::net::IpAddr;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::Deserialize;

/// Most `spec.notify` targets a run may have unless the admin says otherwise.
pub const DEFAULT_MAX_TARGETS: usize = 5;

/// An IP network such as `10.96.0.0/12` or `fd00::/8` (a bare IP is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32) == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128) == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// The top `prefix` bits of a `width`-bit address.
fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    let prefix = u32::from(prefix.min(width));
    let keep = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) >> (128 - u32::from(width)) };
    bits & keep
}

/// `::ffff:10.0.0.1` is `10.0.0.1`: the same socket underneath.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (s, None),
        };
        let network: IpAddr = ip.parse().map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= width).ok_or_else(|| format!("{s:?}: bad prefix length"))?
            }
        };
        Ok(Cidr { network, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// One `allowedDestinations` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Exactly this host name (lowercase, no trailing dot).
    Host(String),
    /// `*.example.com`: any name below `example.com` (not itself).
    Below(String),
    /// An IP or network.
    Network(Cidr),
}

impl Destination {
    fn allows_host(&self, host: &str) -> bool {
        match self {
            Destination::Host(h) => h == host,
            Destination::Below(domain) => {
                host.strip_suffix(domain.as_str()).is_some_and(|rest| rest.len() > 1 && rest.ends_with('.'))
            }
            Destination::Network(_) => false,
        }
    }

    fn allows_ip(&self, ip: IpAddr) -> bool {
        matches!(self, Destination::Network(net) if net.contains(ip))
    }
}

impl TryFrom<String> for Destination {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let s = normalize_host(&s);
        if s.contains('/') || s.parse::<IpAddr>().is_ok() {
            return s.parse().map(Destination::Network);
        }
        let (name, below) = match s.strip_prefix("*.") {
            Some(domain) => (domain.to_string(), true),
            None => (s.clone(), false),
        };
        let label_ok = |l: &str| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(format!("{s:?} is not a host name, `*.domain`, IP address or CIDR"));
        }
        Ok(if below { Destination::Below(name) } else { Destination::Host(name) })
    }
}

/// Host names compare lowercase, without a trailing dot or IPv6 brackets.
fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.to_ascii_lowercase()
}

/// The admin's destination policy (`notify` in the operator's config).
#[derive(Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationPolicy {
    /// Host names, `*.domain` wildcards, IPs and CIDRs that may be notified
    /// even inside the always-refused and internal ranges.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub allowed_destinations: Vec<Destination>,
    /// Networks tenants must not reach through the operator: the cluster's
    /// service and pod ranges at least. Default: every private range.
    #[serde(default = "default_internal_cidrs", rename = "internalCIDRs")]
    #[schemars(with = "Vec<String>")]
    pub internal_cidrs: Vec<Cidr>,
    /// Whether destinations outside every refused range may be notified
    /// without being listed (default true).
    #[serde(default = "yes")]
    pub allow_public: bool,
    /// Most `spec.notify` targets one run may have.
    #[serde(default = "default_max_targets")]
    pub max_targets: usize,
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Destination::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cidr::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

fn yes() -> bool {
    true
}

fn default_max_targets() -> usize {
    DEFAULT_MAX_TARGETS
}

fn default_internal_cidrs() -> Vec<Cidr> {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"]
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect()
}

impl Default for DestinationPolicy {
    fn default() -> Self {
        DestinationPolicy {
            allowed_destinations: Vec::new(),
            internal_cidrs: default_internal_cidrs(),
            allow_public: true,
            max_targets: DEFAULT_MAX_TARGETS,
        }
    }
}

/// Addresses that are never public: this host, link-local, unspecified,
/// multicast and broadcast.
fn always_refused(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.octets()[0] == 0
        }
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

impl DestinationPolicy {
    /// Whether the operator may connect to `ip`. `host_listed`: the URL's
    /// host name is itself an allowed destination (then any address it
    /// resolves to is allowed).
    pub fn allows_ip(&self, ip: IpAddr, host_listed: bool) -> bool {
        if host_listed || self.allowed_destinations.iter().any(|d| d.allows_ip(ip)) {
            return true;
        }
        self.allow_public && !always_refused(ip) && !self.internal_cidrs.iter().any(|c| c.contains(ip))
    }

    /// Whether `host` (a name, not an IP) is listed in `allowedDestinations`.
    pub fn host_listed(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.allowed_destinations.iter().any(|d| d.allows_host(&host))
    }

    /// Checks a target URL before anything is sent: an http(s) URL whose
    /// host is an allowed IP, or a name that may be tried (and is checked
    /// again once resolved). The error says why not.
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let host = url_host(url)?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return if self.allows_ip(ip, false) {
                Ok(())
            } else {
                Err(format!("{ip} is not an allowed notification destination (the operator's notify policy)"))
            };
        }
        if self.host_listed(&host) {
            return Ok(());
        }
        if host == "localhost" || host.ends_with(".localhost") {
            return Err(format!("{host} is this host: not an allowed notification destination"));
        }
        if !self.allow_public {
            return Err(format!("{host} is not among the operator's allowed notification destinations"));
        }
        Ok(())
    }
}

/// The lowercase host of an `http://` or `https://` URL (IPv6 without brackets).
pub fn url_host(url: &str) -> Result<String, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("must be an http:// or https:// URL".into());
    }
    let uri: hyper::Uri = url.parse().map_err(|e| format!("not a valid URL: {e}"))?;
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(normalize_host(host)),
        _ => Err("the URL names no host".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(yaml: &str) -> DestinationPolicy {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn cidrs_match_their_prefix_only() {
        let net: Cidr = "10.96.0.0/12".parse().unwrap();
        assert!(net.contains(ip("10.96.0.1")) && net.contains(ip("10.111.255.255")));
        assert!(!net.contains(ip("10.112.0.0")) && !net.contains(ip("10.95.255.255")));
        assert!(net.contains(ip("::ffff:10.100.0.1")), "IPv4-mapped IPv6 is the IPv4 address");
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")) && !v6.contains(ip("10.0.0.1")));
        let host: Cidr = "10.88.0.1".parse().unwrap();
        assert!(host.contains(ip("10.88.0.1")) && !host.contains(ip("10.88.0.2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "10.0.0/8", "fd00::/129", "10.0.0.0/x", "example.com/8"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn by_default_public_addresses_pass_and_nothing_internal_does() {
        let p = DestinationPolicy::default();
        assert_eq!(p.max_targets, 5);
        for allowed in ["203.0.113.7", "8.8.8.8", "2001:db8::1", "172.32.0.1", "192.169.0.1"] {
            assert!(p.allows_ip(ip(allowed), false), "{allowed}");
        }
        for refused in [
            "127.0.0.1",
            "127.8.8.8",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
            "10.96.0.1",
            "10.88.0.7",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!p.allows_ip(ip(refused), false), "{refused}");
        }
    }

    #[test]
    fn allowed_destinations_open_what_they_cover_and_nothing_else() {
        let p =
            policy("allowedDestinations: [10.88.0.0/16, 127.0.0.1, resultsdb.ci.svc.cluster.local, '*.example.com']");
        assert!(p.allows_ip(ip("10.88.3.4"), false));
        assert!(p.allows_ip(ip("127.0.0.1"), false));
        assert!(!p.allows_ip(ip("127.0.0.2"), false));
        assert!(!p.allows_ip(ip("10.96.0.1"), false));
        assert!(p.host_listed("ResultsDB.ci.svc.cluster.local."));
        assert!(p.host_listed("a.b.example.com") && !p.host_listed("example.com") && !p.host_listed("badexample.com"));
        assert!(p.allows_ip(ip("10.96.0.10"), true), "a listed name may resolve anywhere");
    }

    #[test]
    fn the_admin_can_narrow_internal_ranges_or_refuse_everything_unlisted() {
        let narrowed = policy("internalCIDRs: [10.96.0.0/12, 10.244.0.0/16]");
        assert!(narrowed.allows_ip(ip("10.1.2.3"), false), "private but outside the cluster's ranges");
        assert!(!narrowed.allows_ip(ip("10.244.1.1"), false));
        assert!(!narrowed.allows_ip(ip("169.254.169.254"), false), "link-local stays refused");
        let closed = policy("allowPublic: false\nallowedDestinations: [results.example.org]\nmaxTargets: 2");
        assert_eq!(closed.max_targets, 2);
        assert!(!closed.allows_ip(ip("203.0.113.7"), false));
        assert!(closed.check_url("https://results.example.org/api").is_ok());
        assert!(closed.check_url("https://other.example.org/api").unwrap_err().contains("allowed"));
    }

    #[test]
    fn urls_are_checked_by_their_host() {
        let p = DestinationPolicy::default();
        assert!(p.check_url("https://resultsdb.example/api/v2.0/results").is_ok(), "names are checked when resolved");
        assert!(p.check_url("http://203.0.113.7:8080/x").is_ok());
        for refused in [
            "http://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:1/",
            "http://[::1]:8080/",
            "http://10.96.0.1/",
            "http://localhost:8080/",
            "http://api.localhost/",
            "http://LOCALHOST./",
        ] {
            assert!(p.check_url(refused).is_err(), "{refused}");
        }
        assert!(p.check_url("ftp://example.com/").unwrap_err().contains("http"));
        assert!(p.check_url("http:///path").is_err());
        assert_eq!(url_host("http://user@[FD00::1]:80/x").unwrap(), "fd00::1");
    }

    #[test]
    fn bad_entries_are_refused_with_the_value() {
        for bad in
            ["allowedDestinations: ['http://x']", "allowedDestinations: ['a..b']", "internalCIDRs: [10.0.0.0/40]"]
        {
            let err = serde_yaml::from_str::<DestinationPolicy>(bad).unwrap_err().to_string();
            assert!(err.contains("not") || err.contains("prefix"), "{bad}: {err}");
        }
        assert!(serde_yaml::from_str::<DestinationPolicy>("allowedHosts: []").is_err(), "unknown fields are refused");
    }
}
