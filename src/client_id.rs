//! Client ids: 128 random bits shown as a lowercase GUID.

use std::fmt;
use std::str::FromStr;

/// The id the server gives each connection: 128 random bits, shown as a lowercase GUID
/// (`8-4-4-4-12` hex digits). Clients cannot choose it; they learn it from the
/// `X-Signal-ClientId` header of the `101` response.
///
/// ```
/// use signalhub::ClientId;
/// let id: ClientId = "0123abcd-0000-4000-8000-00000000cafe".parse().unwrap();
/// assert_eq!(id.to_string(), "0123abcd-0000-4000-8000-00000000cafe");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(u128);

impl ClientId {
    /// A new random id, with the version (4) and variant bits of a random UUID set.
    pub fn random() -> ClientId {
        let mut bytes = [0u8; 16];
        crate::random::fill(&mut bytes);
        let bits = u128::from_be_bytes(bytes);
        let bits = (bits & !(0xF << 76)) | (0x4 << 76); // version 4
        let bits = (bits & !(0x3 << 62)) | (0x2 << 62); // RFC 4122 variant
        ClientId(bits)
    }

    /// The id's 128 bits.
    pub fn as_u128(self) -> u128 {
        self.0
    }

    /// The id with this number (backplane messages carry ids as numbers).
    #[cfg(feature = "redis")]
    pub(crate) fn from_u128(n: u128) -> ClientId {
        ClientId(n)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xFFFF_FFFF_FFFF
        )
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A string that is not a GUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidClientId;

impl fmt::Display for InvalidClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a client id (expected 8-4-4-4-12 hex digits)")
    }
}

impl std::error::Error for InvalidClientId {}

impl FromStr for ClientId {
    type Err = InvalidClientId;

    /// Parses the GUID form, hex digits in either case.
    fn from_str(s: &str) -> Result<ClientId, InvalidClientId> {
        let groups: Vec<&str> = s.split('-').collect();
        let shape_ok = groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, len)| g.len() == len);
        if !shape_ok {
            return Err(InvalidClientId);
        }
        let hex: String = groups.concat();
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidClientId);
        }
        u128::from_str_radix(&hex, 16)
            .map(ClientId)
            .map_err(|_| InvalidClientId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_lowercase_guids_and_differ() {
        let a = ClientId::random();
        let b = ClientId::random();
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 36);
        let lens: Vec<usize> = text.split('-').map(str::len).collect();
        assert_eq!(lens, [8, 4, 4, 4, 12]);
        assert!(text
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_lowercase()));
        assert_eq!(text.as_bytes()[14], b'4');
    }

    #[test]
    fn parse_round_trips_and_accepts_upper_case() {
        let id = ClientId::random();
        assert_eq!(id.to_string().parse::<ClientId>(), Ok(id));
        assert_eq!(id.to_string().to_uppercase().parse::<ClientId>(), Ok(id));
    }

    #[test]
    fn parse_rejects_other_shapes() {
        for bad in [
            "",
            "x",
            "0123abcd00004000800000000000cafe",
            "0123abcd-0000-4000-8000-00000000cafg",
            "+123abcd-0000-4000-8000-00000000cafe",
            "0123abcd-0000-4000-8000-00000000cafe-",
        ] {
            assert_eq!(bad.parse::<ClientId>(), Err(InvalidClientId), "{bad}");
        }
    }
}
