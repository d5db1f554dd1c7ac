//! The services a host profile of a simulator's catalog exposes.

/// An open port of a host, as a scanner finds it.
#[derive(Debug)]
pub struct Service {
    pub port: u16,
    pub transport: Transport,
    pub name: &'static str,
    pub tls: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// `TCP` or `UDP`.
    pub fn upper(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
        }
    }

    /// `tcp` or `udp`.
    pub fn lower(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

pub const fn tcp(port: u16, name: &'static str) -> Service {
    Service { port, transport: Transport::Tcp, name, tls: false }
}

/// A TCP service spoken over TLS.
pub const fn tls(port: u16, name: &'static str) -> Service {
    Service { port, transport: Transport::Tcp, name, tls: true }
}

pub const fn udp(port: u16, name: &'static str) -> Service {
    Service { port, transport: Transport::Udp, name, tls: false }
}
