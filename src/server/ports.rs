//! Binding the listening sockets: one per distinct address, shared by a WebSocket and an HTTP
//! endpoint on the same address.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use super::config::Endpoint;
use super::door;
use crate::event::{EndpointInfo, Protocol};
use crate::{Error, Result};

/// One listening socket and what it serves: WebSocket upgrades, HTTP, or both.
pub(crate) struct Port {
    pub(crate) socket: TcpListener,
    /// The `Ws` or `Wss` endpoint on this port, if any.
    pub(crate) websocket: Option<Arc<EndpointInfo>>,
    /// The `Http` or `Https` endpoint on this port, if any.
    pub(crate) http: Option<Arc<EndpointInfo>>,
    /// On a TLS port (Wss, Https): its TLS configuration.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// The certificate `tls` was made from, to compare with a second endpoint's.
    certificate: Option<crate::tls::Certificate>,
    /// The WebSocket endpoint's own subprotocols, if it names any.
    pub(crate) subprotocols: Option<Vec<String>>,
}

/// Binds one socket per distinct address; a WebSocket and an HTTP endpoint on the same
/// address (with a non-zero port), or joined by [`Endpoint::share_port_with`], share it: `Ws`
/// with `Http`, `Wss` with `Https` (one certificate for both). Two endpoints of the same kind
/// on one port, or a TLS endpoint with a plain one, are an error.
pub(crate) fn bind_ports(endpoints: &[Endpoint]) -> Result<Vec<Port>> {
    let mut ports: Vec<(SocketAddr, Port)> = Vec::new();
    let mut port_of: Vec<(String, usize)> = Vec::new();
    for endpoint in sharing_last(endpoints) {
        let wanted = endpoint.socket_addr()?;
        let shared = match &endpoint.share_with {
            Some(name) => Some(
                port_of
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, index)| *index)
                    .ok_or_else(|| Error::UnknownEndpoint(name.clone()))?,
            ),
            None if wanted.port() == 0 => None,
            None => ports.iter().position(|(addr, _)| *addr == wanted),
        };
        let index = match shared {
            Some(index) => index,
            None => {
                let socket = door::bind(wanted).map_err(|source| Error::Bind {
                    address: endpoint.address.clone(),
                    source,
                })?;
                let port = Port {
                    socket,
                    websocket: None,
                    http: None,
                    tls: None,
                    certificate: None,
                    subprotocols: None,
                };
                ports.push((wanted, port));
                ports.len() - 1
            }
        };
        port_of.push((endpoint.name.clone().unwrap_or_default(), index));
        let port = &mut ports[index].1;
        let info = Arc::new(EndpointInfo {
            name: endpoint.name.clone().unwrap_or_default(),
            address: port.socket.local_addr()?,
            protocol: endpoint.protocol,
        });
        let sharing = port.websocket.is_some() || port.http.is_some();
        if sharing && port.certificate != endpoint.certificate {
            return Err(Error::InvalidConfig(format!(
                "endpoints sharing {} must both use TLS with the same certificate, or neither",
                endpoint.address
            )));
        }
        if let (Some(certificate), None) = (&endpoint.certificate, &port.tls) {
            port.tls = Some(crate::tls::server_config(certificate)?);
            port.certificate = Some(certificate.clone());
        }
        let slot = match endpoint.protocol {
            Protocol::Http | Protocol::Https => &mut port.http,
            Protocol::Ws | Protocol::Wss => {
                port.subprotocols = endpoint.subprotocols.clone();
                &mut port.websocket
            }
        };
        if slot.replace(info).is_some() {
            return Err(Error::InvalidConfig(format!(
                "two {} endpoints on {}",
                endpoint.protocol.as_str(),
                endpoint.address
            )));
        }
    }
    Ok(ports.into_iter().map(|(_, port)| port).collect())
}

/// The endpoints with those that share another's port last, so that one is bound first.
fn sharing_last(endpoints: &[Endpoint]) -> impl Iterator<Item = &Endpoint> {
    let (sharing, own): (Vec<&Endpoint>, Vec<&Endpoint>) =
        endpoints.iter().partition(|e| e.share_with.is_some());
    own.into_iter().chain(sharing)
}
