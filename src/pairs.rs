//! Name-value pairs in two allocations, for what a connection keeps of its upgrade request.
//!
//! Every connection holds its request's headers and query for as long as it lives, and a
//! server holds thousands of connections: a `Vec<(String, String)>` costs two allocations a
//! header (about 600 bytes for a plain client's five), this costs two in all.

use std::fmt;

/// Name-value pairs in the order they came: an upgrade request's headers or query.
///
/// ```
/// use signalhub::Pairs;
///
/// let headers: Pairs = [("Host", "example.com"), ("Origin", "https://example.com")]
///     .into_iter()
///     .collect();
/// assert_eq!(headers.get_ignore_case("origin"), Some("https://example.com"));
/// assert_eq!(headers.iter().map(|(name, _)| name).collect::<Vec<_>>(), ["Host", "Origin"]);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pairs {
    /// Every name and value, back to back.
    text: Box<str>,
    /// Where each pair's name ends and where its value ends, in `text`.
    ends: Box<[(usize, usize)]>,
}

impl Pairs {
    /// The pairs in order.
    pub fn iter(&self) -> PairsIter<'_> {
        PairsIter {
            pairs: self,
            next: 0,
        }
    }

    /// The first value of `name` (exact match, as for query parameters).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The first value of `name` compared case-insensitively (ASCII), as for headers.
    pub fn get_ignore_case(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// How many pairs there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Pairs {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let (mut text, mut ends) = (String::new(), Vec::new());
        for (name, value) in pairs {
            text.push_str(name.as_ref());
            let name_end = text.len();
            text.push_str(value.as_ref());
            ends.push((name_end, text.len()));
        }
        Pairs {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }
}

/// As a list of `[name, value]` pairs, in order (names may repeat).
impl serde::Serialize for Pairs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'a> IntoIterator for &'a Pairs {
    type Item = (&'a str, &'a str);
    type IntoIter = PairsIter<'a>;

    fn into_iter(self) -> PairsIter<'a> {
        self.iter()
    }
}

/// The pairs of a [`Pairs`], in order, as `(name, value)`.
#[derive(Debug, Clone)]
pub struct PairsIter<'a> {
    pairs: &'a Pairs,
    next: usize,
}

impl<'a> Iterator for PairsIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let ends = &self.pairs.ends;
        let &(name_end, value_end) = ends.get(self.next)?;
        let start = self.next.checked_sub(1).map_or(0, |i| ends[i].1);
        self.next += 1;
        let text = &self.pairs.text;
        Some((&text[start..name_end], &text[name_end..value_end]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.pairs.ends.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for PairsIter<'_> {}

impl fmt::Debug for Pairs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_duplicates_and_empty_parts() {
        let pairs: Pairs = [
            ("a", "1"),
            ("", ""),
            ("B", "two words"),
            ("a", "3"),
            ("é", ""),
        ]
        .into_iter()
        .collect();
        assert_eq!(pairs.len(), 5);
        assert_eq!(
            pairs.iter().collect::<Vec<_>>(),
            [
                ("a", "1"),
                ("", ""),
                ("B", "two words"),
                ("a", "3"),
                ("é", "")
            ]
        );
        assert_eq!(pairs.get("a"), Some("1"));
        assert_eq!(pairs.get("b"), None);
        assert_eq!(pairs.get_ignore_case("b"), Some("two words"));
        assert_eq!(pairs.get("é"), Some(""));
        assert_eq!(format!("{pairs:?}").matches("\"a\"").count(), 2);
        let empty = Pairs::default();
        assert!(empty.is_empty() && empty.iter().next().is_none());
        assert_eq!((&pairs).into_iter().count(), 5);
    }
}
