//! Where a scanner call may go. An admin chooses a connector's base_url, and what the
//! scanner answers (headers and body) is kept on the job for every reader: a connector
//! pointed at an internal service (the cloud metadata address, an admin port on the
//! VPC) would read that service out to them. So a scanner must be public and https,
//! unless the deployment's allow list (`SCANNER_ALLOW_LIST`, the template's
//! ScannerAllowList) names it: on-premises scanners (Rapid7 consoles) live on private
//! networks.
//!
//! The API checks a base_url when a connector is created or changed. The pipeline checks
//! again at every call, in [`ScannerHttp`]: a connector may predate the rule, and a host
//! name may resolve elsewhere after it was checked (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::errors::SyncError;

/// How long the API waits for a host name to resolve: it must answer within API
/// Gateway's 29 s, with a 400 rather than a timeout.
const API_LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a deployment allows beyond public https scanners.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScannerNetworkPolicy {
    allowed_ranges: Vec<IpNet>,
    /// Lower case, without a trailing dot.
    allowed_hosts: Vec<String>,
}

/// Why the policy refuses a base_url. Reads on from the field's name, as
/// [`SyncError::InvalidField`] does: `base_url must be https: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressRefused {
    PlainHttp,
    NonPublic {
        address: IpAddr,
        /// What kind of address it is: `a private address`.
        kind: &'static str,
        /// Whether the address came from resolving a host name rather than from the URL.
        resolved: bool,
    },
    Unresolved,
}

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressRefused::PlainHttp => f.write_str(
                "must be https: plain http is allowed only for hosts the deployment's ScannerAllowList names",
            ),
            AddressRefused::NonPublic { address, kind, resolved } => write!(
                f,
                "{} {address}, {kind}: vulnflow refuses non-public scanner addresses unless the deployment's \
                 ScannerAllowList names them",
                if *resolved { "resolves to" } else { "is" }
            ),
            AddressRefused::Unresolved => f.write_str("does not resolve: check the host name"),
        }
    }
}

impl std::error::Error for AddressRefused {}

/// A refused address is the connector's to fix, and no retry changes it.
impl From<AddressRefused> for SyncError {
    fn from(refused: AddressRefused) -> Self {
        SyncError::invalid_field("base_url", refused.to_string())
    }
}

const PRIVATE: &str = "a private address";
const METADATA: &str = "the cloud metadata address";
const DOCUMENTATION: &str = "a documentation address";
const RESERVED: &str = "a reserved address";

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// The IPv4 ranges no scanner on the internet has, the first match naming the address.
const NON_PUBLIC_V4: [(Ipv4Net, &str); 16] = [
    // "This network": connecting to 0.0.0.0 reaches the local host.
    (v4(0, 0, 0, 0, 8), "an unspecified address"),
    (v4(127, 0, 0, 0, 8), "a loopback address"),
    (v4(10, 0, 0, 0, 8), PRIVATE),
    (v4(172, 16, 0, 0, 12), PRIVATE),
    (v4(192, 168, 0, 0, 16), PRIVATE),
    (v4(169, 254, 169, 254, 32), METADATA),
    (v4(169, 254, 0, 0, 16), "a link-local address"),
    (v4(100, 64, 0, 0, 10), "a carrier-grade NAT address"),
    (v4(192, 0, 0, 0, 24), RESERVED),
    (v4(192, 0, 2, 0, 24), DOCUMENTATION),
    (v4(198, 51, 100, 0, 24), DOCUMENTATION),
    (v4(203, 0, 113, 0, 24), DOCUMENTATION),
    (v4(198, 18, 0, 0, 15), "a benchmarking address"),
    (v4(224, 0, 0, 0, 4), "a multicast address"),
    (v4(255, 255, 255, 255, 32), "the broadcast address"),
    (v4(240, 0, 0, 0, 4), RESERVED),
];

/// The same for IPv6. Addresses that embed an IPv4 one are judged by it (see [`embedded_ipv4`]).
const NON_PUBLIC_V6: [(Ipv6Net, &str); 8] = [
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "an unspecified address"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "a loopback address"),
    // The metadata service's IPv6 address on AWS Nitro instances.
    (v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128), METADATA),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "a unique local address"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "a link-local address"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "a site-local address"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "a multicast address"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), DOCUMENTATION),
];

/// NAT64's well-known prefix: a NAT64 gateway (AWS's NAT gateways are) forwards
/// `64:ff9b::a.b.c.d` to a.b.c.d, private addresses included.
const NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);

/// The IPv4 address an IPv6 one reaches: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`).
fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let [.., a, b, c, d] = address.octets();
    address.to_ipv4().or_else(|| NAT64.contains(&address).then_some(Ipv4Addr::new(a, b, c, d)))
}

/// What kind of non-public address `address` is, as a refusal names it (`a private
/// address`); `None` for a public one.
pub fn non_public_kind(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(address) => NON_PUBLIC_V4.iter().find(|(range, _)| range.contains(&address)).map(|(_, kind)| *kind),
        IpAddr::V6(address) => NON_PUBLIC_V6
            .iter()
            .find(|(range, _)| range.contains(&address))
            .map(|(_, kind)| *kind)
            .or_else(|| embedded_ipv4(address).and_then(|embedded| non_public_kind(IpAddr::V4(embedded)))),
    }
}

/// A URL's host: `[::1]` is the address ::1.
enum Host<'a> {
    Name(&'a str),
    Address(IpAddr),
}

fn host_of(url: &reqwest::Url) -> Option<Host<'_>> {
    let host = url.host_str()?;
    let unbracketed = host.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')).unwrap_or(host);
    Some(unbracketed.parse().map_or(Host::Name(host), Host::Address))
}

/// How a host name is compared with the allow list's.
fn host_key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn is_host_name(entry: &str) -> bool {
    entry.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && entry.chars().any(|c| c.is_ascii_alphabetic())
}

impl ScannerNetworkPolicy {
    /// The policy of an allow list: entries separated by commas, each an IP address
    /// (`10.20.0.5`), a CIDR range (`10.20.0.0/16`, `fd00::/8`) or a host name
    /// (`rapid7.corp.example`, matched exactly, whatever its case). An empty list allows
    /// public https scanners only.
    pub fn from_allow_list(allow_list: &str) -> Result<Self, String> {
        let mut policy = ScannerNetworkPolicy::default();
        for entry in allow_list.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
            if let Ok(range) = entry.parse::<IpNet>() {
                policy.allowed_ranges.push(range);
            } else if let Ok(address) = entry.parse::<IpAddr>() {
                policy.allowed_ranges.push(IpNet::from(address));
            } else if is_host_name(entry) {
                policy.allowed_hosts.push(host_key(entry));
            } else {
                return Err(format!(
                    "{entry:?} is neither an IP address, a CIDR range (10.20.0.0/16) nor a host name (without a port)"
                ));
            }
        }
        Ok(policy)
    }

    /// 127.0.0.1 only: where the Tenable simulator of the tests and of the local stack listens.
    pub fn local_simulator() -> Self {
        ScannerNetworkPolicy {
            allowed_ranges: vec![IpNet::from(IpAddr::V4(Ipv4Addr::LOCALHOST))],
            allowed_hosts: Vec::new(),
        }
    }

    fn names_host(&self, name: &str) -> bool {
        self.allowed_hosts.contains(&host_key(name))
    }

    fn allows_address(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.allowed_ranges.iter().any(|range| range.contains(&address))
    }

    fn check_address(&self, address: IpAddr, resolved: bool) -> Result<(), AddressRefused> {
        match non_public_kind(address) {
            Some(kind) if !self.allows_address(address) => Err(AddressRefused::NonPublic { address, kind, resolved }),
            _ => Ok(()),
        }
    }

    /// What the URL itself tells: an address host must be public or allowed, and the
    /// scheme https unless the allow list names the host (its name, or its address when
    /// the host is one). A host name's addresses are checked where the name is resolved.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), AddressRefused> {
        let listed = match host_of(url) {
            Some(Host::Name(name)) => self.names_host(name),
            Some(Host::Address(address)) => {
                self.check_address(address, false)?;
                self.allows_address(address)
            }
            None => false,
        };
        if url.scheme() != "https" && !listed {
            return Err(AddressRefused::PlainHttp);
        }
        Ok(())
    }

    /// The addresses `name` resolved to must each be public or allowed, unless the
    /// allow list names the host itself.
    pub fn check_resolved(
        &self,
        name: &str,
        addresses: impl IntoIterator<Item = IpAddr>,
    ) -> Result<(), AddressRefused> {
        if self.names_host(name) {
            return Ok(());
        }
        addresses.into_iter().try_for_each(|address| self.check_address(address, true))
    }

    /// [`Self::check_url`], then the addresses the host name resolves to now: what the
    /// API checks before it keeps a base_url. A host the allow list names is not looked up.
    pub async fn check_url_and_addresses(&self, url: &reqwest::Url) -> Result<(), AddressRefused> {
        self.check_url(url)?;
        let Some(Host::Name(name)) = host_of(url) else { return Ok(()) };
        if self.names_host(name) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<IpAddr> = tokio::time::timeout(API_LOOKUP_TIMEOUT, tokio::net::lookup_host((name, port)))
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(AddressRefused::Unresolved)?
            .map(|address| address.ip())
            .collect();
        if addresses.is_empty() {
            return Err(AddressRefused::Unresolved);
        }
        self.check_resolved(name, addresses)
    }
}

/// Resolves host names as the system does, and fails the names whose addresses the
/// policy refuses: the connection then never starts.
struct PolicyResolver(Arc<ScannerNetworkPolicy>);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
            policy.check_resolved(host, addresses.iter().map(SocketAddr::ip))?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client of every scanner call, and the policy it enforces: a request goes
/// only where the policy allows, and no redirect is followed (its target would go
/// unchecked when it is an address: those bypass the resolver).
#[derive(Clone)]
pub struct ScannerHttp {
    client: reqwest::Client,
    policy: Arc<ScannerNetworkPolicy>,
}

/// Why a scanner call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("base_url {0}")]
    Refused(AddressRefused),
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

impl ScannerHttp {
    /// `builder` brings the client's other settings (timeouts, user agent).
    pub fn new(policy: Arc<ScannerNetworkPolicy>, builder: reqwest::ClientBuilder) -> reqwest::Result<Self> {
        let client =
            builder.dns_resolver(PolicyResolver(policy.clone())).redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(ScannerHttp { client, policy })
    }

    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client.request(method, url)
    }

    /// Sends a request made by [`Self::request`] if the policy allows its URL. The
    /// resolver's refusal of a host name's addresses comes back the same way.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, SendError> {
        let request = request.build()?;
        self.policy.check_url(request.url()).map_err(SendError::Refused)?;
        self.client.execute(request).await.map_err(|error| {
            // reqwest and hyper wrap what the resolver said: find it in the error's sources.
            let refused = std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| e.source())
                .find_map(|e| e.downcast_ref::<AddressRefused>().cloned());
            refused.map_or(SendError::Http(error), SendError::Refused)
        })
    }
}

#[cfg(test)]
mod tests {
    use tenable_simulator::{RunningSimulator, SimulatorConfig};

    use super::*;

    fn url(text: &str) -> reqwest::Url {
        reqwest::Url::parse(text).expect("a URL")
    }

    fn allowing(allow_list: &str) -> ScannerNetworkPolicy {
        ScannerNetworkPolicy::from_allow_list(allow_list).expect("a valid allow list")
    }

    fn refused_address(kind: &'static str, address: &str, resolved: bool) -> Result<(), AddressRefused> {
        Err(AddressRefused::NonPublic { address: address.parse().expect("an address"), kind, resolved })
    }

    #[test]
    fn every_non_public_range_is_named_and_public_addresses_are_not() {
        let cases = [
            ("0.0.0.0", Some("an unspecified address")),
            ("0.1.2.3", Some("an unspecified address")),
            ("127.0.0.1", Some("a loopback address")),
            ("127.0.0.2", Some("a loopback address")),
            ("10.1.2.3", Some(PRIVATE)),
            ("172.16.0.1", Some(PRIVATE)),
            ("172.31.255.255", Some(PRIVATE)),
            ("192.168.1.1", Some(PRIVATE)),
            ("169.254.169.254", Some(METADATA)),
            ("169.254.1.1", Some("a link-local address")),
            ("100.64.0.1", Some("a carrier-grade NAT address")),
            ("100.127.255.254", Some("a carrier-grade NAT address")),
            ("192.0.0.192", Some(RESERVED)),
            ("192.0.2.10", Some(DOCUMENTATION)),
            ("198.51.100.7", Some(DOCUMENTATION)),
            ("203.0.113.9", Some(DOCUMENTATION)),
            ("198.19.0.1", Some("a benchmarking address")),
            ("224.0.0.251", Some("a multicast address")),
            ("255.255.255.255", Some("the broadcast address")),
            ("240.0.0.1", Some(RESERVED)),
            ("::", Some("an unspecified address")),
            ("::1", Some("a loopback address")),
            ("fd00:ec2::254", Some(METADATA)),
            ("fd12:3456::1", Some("a unique local address")),
            ("fc00::1", Some("a unique local address")),
            ("fe80::1", Some("a link-local address")),
            ("fec0::1", Some("a site-local address")),
            ("ff02::1", Some("a multicast address")),
            ("2001:db8::1", Some(DOCUMENTATION)),
            // IPv6 forms that reach an IPv4 address are judged by it.
            ("::ffff:169.254.169.254", Some(METADATA)),
            ("::ffff:10.0.0.1", Some(PRIVATE)),
            ("::ffff:127.0.0.1", Some("a loopback address")),
            ("::127.0.0.1", Some("a loopback address")),
            ("64:ff9b::a9fe:a9fe", Some(METADATA)),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("172.32.0.1", None),
            ("100.128.0.1", None),
            ("169.255.0.1", None),
            ("2606:4700::1", None),
            ("2a00:1450:4001::200e", None),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::808:808", None),
        ];
        for (address, expected) in cases {
            assert_eq!(non_public_kind(address.parse().expect("an address")), expected, "{address}");
        }
    }

    #[test]
    fn without_an_allow_list_only_public_https_scanners_pass() {
        let policy = ScannerNetworkPolicy::default();
        assert_eq!(policy.check_url(&url("https://cloud.tenable.com")), Ok(()));
        assert_eq!(policy.check_url(&url("https://8.8.8.8:8443/api")), Ok(()));
        assert_eq!(policy.check_url(&url("https://[2606:4700::1]")), Ok(()));
        assert_eq!(policy.check_url(&url("http://cloud.tenable.com")), Err(AddressRefused::PlainHttp));
        assert_eq!(policy.check_url(&url("http://8.8.8.8")), Err(AddressRefused::PlainHttp));
        assert_eq!(
            policy.check_url(&url("http://169.254.169.254")),
            refused_address(METADATA, "169.254.169.254", false),
            "the address is what to fix, not the scheme"
        );
        let refused = [
            ("https://169.254.169.254/latest/meta-data", METADATA, "169.254.169.254"),
            ("https://[::ffff:169.254.169.254]", METADATA, "::ffff:169.254.169.254"),
            ("https://[fd00:ec2::254]", METADATA, "fd00:ec2::254"),
            ("https://10.0.0.5", PRIVATE, "10.0.0.5"),
            ("https://[::1]:8443", "a loopback address", "::1"),
            // The URL parser reads these spellings as 127.0.0.1.
            ("https://0x7f.1", "a loopback address", "127.0.0.1"),
            ("https://2130706433", "a loopback address", "127.0.0.1"),
        ];
        for (text, kind, address) in refused {
            assert_eq!(policy.check_url(&url(text)), refused_address(kind, address, false), "{text}");
        }
    }

    #[test]
    fn a_refusal_says_what_was_found_and_what_to_do() {
        let policy = ScannerNetworkPolicy::default();
        let error = SyncError::from(policy.check_url(&url("https://10.0.0.5")).expect_err("refused"));
        assert_eq!(
            error.to_string(),
            "base_url is 10.0.0.5, a private address: vulnflow refuses non-public scanner addresses unless the \
             deployment's ScannerAllowList names them"
        );
        assert_eq!(error.error_name(), crate::errors::error_names::INVALID_REQUEST, "never retried");
        let resolved = policy.check_resolved("scanner.example", ["10.1.2.3".parse().expect("an address")]);
        assert!(resolved.expect_err("refused").to_string().starts_with("resolves to 10.1.2.3, a private address"));
        let plain = SyncError::from(AddressRefused::PlainHttp).to_string();
        assert!(plain.starts_with("base_url must be https") && plain.contains("ScannerAllowList"), "{plain}");
    }

    #[test]
    fn the_allow_list_admits_its_addresses_ranges_and_host_names() {
        let policy = allowing(" 10.20.0.5, 172.16.0.0/12 ,fd00::/8, Rapid7.Corp.Example. ,");
        for allowed in [
            "http://10.20.0.5:3780",
            "https://172.20.1.1",
            "http://172.20.1.1",
            "https://[fd00::5]",
            "https://[::ffff:172.20.1.1]",
            "http://rapid7.corp.example:3780",
            "HTTP://RAPID7.CORP.EXAMPLE.",
        ] {
            assert_eq!(policy.check_url(&url(allowed)), Ok(()), "{allowed}");
        }
        assert_eq!(policy.check_url(&url("https://10.20.0.6")), refused_address(PRIVATE, "10.20.0.6", false));
        assert_eq!(
            policy.check_url(&url("https://169.254.169.254")),
            refused_address(METADATA, "169.254.169.254", false)
        );
        // A listed name may resolve anywhere; another name only to public or listed addresses.
        let addresses =
            |list: &[&str]| list.iter().map(|a| a.parse::<IpAddr>().expect("an address")).collect::<Vec<_>>();
        assert_eq!(policy.check_resolved("rapid7.corp.example", addresses(&["127.0.0.1"])), Ok(()));
        assert_eq!(policy.check_resolved("scanner.example", addresses(&["172.20.0.1", "8.8.8.8"])), Ok(()));
        assert_eq!(
            policy.check_resolved("scanner.example", addresses(&["172.20.0.1", "10.0.0.1"])),
            refused_address(PRIVATE, "10.0.0.1", true)
        );
        // Plain http needs the host itself listed: what a name resolves to does not downgrade it.
        assert_eq!(policy.check_url(&url("http://scanner.example")), Err(AddressRefused::PlainHttp));
    }

    #[test]
    fn an_allow_list_entry_that_is_no_address_range_or_host_name_is_refused_naming_it() {
        for bad in ["rapid7.corp:3780", "10.0.0.0/33", "999.1.1.1", "https://rapid7.corp", "10.0.0.1 10.0.0.2"] {
            let error = ScannerNetworkPolicy::from_allow_list(&format!("10.0.0.9,{bad}")).expect_err(bad);
            assert!(error.contains(bad), "{error}");
        }
        assert_eq!(ScannerNetworkPolicy::from_allow_list(" , "), Ok(ScannerNetworkPolicy::default()));
    }

    #[tokio::test]
    async fn the_api_check_looks_up_host_names_the_allow_list_does_not_name() {
        let policy = ScannerNetworkPolicy::default();
        assert_eq!(
            policy.check_url_and_addresses(&url("https://localhost:8443")).await,
            refused_address("a loopback address", "127.0.0.1", true)
        );
        assert_eq!(
            policy.check_url_and_addresses(&url("https://nowhere.invalid")).await,
            Err(AddressRefused::Unresolved)
        );
        assert_eq!(policy.check_url_and_addresses(&url("http://localhost")).await, Err(AddressRefused::PlainHttp));
        let listed = allowing("localhost, scanner.invalid");
        assert_eq!(listed.check_url_and_addresses(&url("http://localhost:8443")).await, Ok(()));
        assert_eq!(listed.check_url_and_addresses(&url("https://scanner.invalid")).await, Ok(()), "not looked up");
    }

    #[tokio::test]
    async fn scanner_calls_go_only_where_the_policy_allows() {
        let simulator = RunningSimulator::start(SimulatorConfig::default()).await.expect("the simulator starts");
        let port = url(&simulator.base_url).port().expect("a port");
        let send = |policy: ScannerNetworkPolicy, target: String| async move {
            let http = ScannerHttp::new(Arc::new(policy), reqwest::Client::builder()).expect("a client");
            http.send(http.request(reqwest::Method::GET, &target)).await
        };
        let refused = |sent: Result<reqwest::Response, SendError>| match sent {
            Err(SendError::Refused(refused)) => refused,
            other => panic!("not refused by the policy: {other:?}"),
        };

        let metadata = send(ScannerNetworkPolicy::default(), "https://169.254.169.254/latest/meta-data".into()).await;
        assert_eq!(
            refused(metadata),
            AddressRefused::NonPublic {
                address: "169.254.169.254".parse().expect("an address"),
                kind: METADATA,
                resolved: false
            }
        );
        // An https name that resolves to loopback is refused by the resolver, before any connection.
        let by_name = send(ScannerNetworkPolicy::default(), format!("https://localhost:{port}/session")).await;
        assert!(matches!(
            refused(by_name),
            AddressRefused::NonPublic { kind: "a loopback address", resolved: true, .. }
        ));

        let answered = send(allowing("localhost"), format!("http://localhost:{port}/session")).await;
        assert!(answered.is_ok(), "{answered:?}");
        let answered = send(ScannerNetworkPolicy::local_simulator(), format!("{}/session", simulator.base_url)).await;
        assert!(answered.is_ok(), "{answered:?}");
    }
}
