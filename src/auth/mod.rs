//! Authentication of WebSocket clients: [`Jwt`] verifies the HS256 JSON Web Tokens they
//! present (Centrifugo-style connection tokens) and hands back their [`Claims`].
//!
//! Nothing here touches a connection: [`Jwt::verify`] takes the token's text and answers with
//! the claims or a [`JwtError`] saying why not. Where the token comes from is the caller's
//! business.

mod jwt;

pub use jwt::{Claims, Jwt, JwtError};
