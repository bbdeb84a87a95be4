//! The signals protocol, on its own and testable without sockets: what a client sends and
//! what its receivers get ([`message`]), the frames that carry them ([`frame`]), who receives
//! a signal ([`target`]), and the URL and form decoding requests need ([`url`]); with the
//! `compression` feature, permessage-deflate's negotiation and codec ([`deflate`]).

#[cfg(feature = "compression")]
pub(crate) mod deflate;
pub(crate) mod frame;
pub(crate) mod message;
pub(crate) mod reader;
pub(crate) mod target;
pub(crate) mod url;

pub(crate) use frame::Frame;
pub(crate) use message::{parse_client_message, ClientMessage};
pub(crate) use target::{resolve_target, EventTargets, Target};

#[cfg(test)]
mod properties;
