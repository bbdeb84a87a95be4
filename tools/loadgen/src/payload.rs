//! What fanout's messages carry beside their `seq` and `t`: `x` padding (`--payload-kind
//! pad`), or JSON like an application's signal (`--payload-kind json`), which compresses as
//! real traffic would rather than as a run of one letter does.
use std::fmt::Write;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    Pad,
    Json,
}

impl FromStr for PayloadKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "pad" => Ok(PayloadKind::Pad),
            "json" => Ok(PayloadKind::Json),
            _ => Err(()),
        }
    }
}

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.below(words.len() as u64) as usize]
    }
}

const NAMES: [&str; 16] = [
    "alpha", "bravo", "cedar", "delta", "ember", "fjord", "gamma", "harbor", "iris", "juniper",
    "kestrel", "lumen", "maple", "nova", "orbit", "pioneer",
];
const STATES: [&str; 5] = ["ok", "idle", "busy", "warn", "offline"];
const ZONES: [&str; 6] = ["north", "south", "east", "west", "core", "edge"];
const UNITS: [&str; 4] = ["C", "kPa", "rpm", "%"];

/// The fields of one item of the `data` array, e.g. `"id":48213`, in order.
fn item_fields(rng: &mut Rng, i: usize) -> Vec<String> {
    let base_ms = 1_767_225_600_000u64; // 2026-01-01, as a server's timestamps would be near
    let value = rng.below(200_000) as f64 / 100.0 - 500.0;
    vec![
        format!(r#""id":{}"#, 10_000 + rng.below(90_000)),
        format!(r#""name":"{}-{}""#, rng.pick(&NAMES), rng.below(100)),
        format!(r#""state":"{}""#, rng.pick(&STATES)),
        format!(r#""value":{value:.2}"#),
        format!(r#""unit":"{}""#, rng.pick(&UNITS)),
        format!(r#""ts":{}"#, base_ms + rng.below(86_400_000) + i as u64),
        format!(r#""zone":"{}""#, rng.pick(&ZONES)),
        format!(r#""ok":{}"#, rng.below(4) != 0),
    ]
}

/// A fanout message's `message` value of about `size` bytes (at least its `seq` and `t`):
/// `{"seq":S,"t":T,"data":[{...},...]}`, the items made from `seed` and `seq` (the same for
/// the same seed and seq, different for each message), the last one with only the fields
/// that fit.
pub fn json_message(seq: usize, t: u64, size: usize, seed: u64) -> String {
    let mut s = String::with_capacity(size + 16);
    let _ = write!(s, r#"{{"seq":{seq},"t":{t},"data":["#);
    let mut rng = Rng(seed ^ (seq as u64).wrapping_mul(0xa076_1d64_78bd_642f));
    for i in 0.. {
        let comma = usize::from(i > 0);
        // Room for this item: what is left after the comma before it and the closing `]}`.
        let room = size.saturating_sub(s.len() + comma + 2);
        let mut item = String::from("{");
        let fields = item_fields(&mut rng, i);
        let total = fields.len();
        let mut taken = 0;
        for f in fields {
            let sep = usize::from(taken > 0);
            if item.len() + sep + f.len() + 1 > room {
                continue; // a shorter one further on may fit
            }
            if sep == 1 {
                item.push(',');
            }
            item.push_str(&f);
            taken += 1;
        }
        if taken == 0 {
            break;
        }
        item.push('}');
        if comma == 1 {
            s.push(',');
        }
        s.push_str(&item);
        if taken < total {
            break;
        }
    }
    s.push_str("]}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn json_is_valid_about_the_size_and_deterministic() {
        for size in [0, 40, 64, 200, 4096, 65_536] {
            for seq in [0, 1, 199, 1999] {
                let m = json_message(seq, 123_456_789_012, size, 1);
                let v: Value = serde_json::from_str(&m).unwrap_or_else(|e| panic!("{e}: {m}"));
                assert_eq!(v["seq"], seq);
                assert_eq!(v["t"], 123_456_789_012u64);
                assert!(v["data"].is_array());
                let bare = format!(r#"{{"seq":{seq},"t":123456789012,"data":[]}}"#).len();
                assert!(m.len() <= size.max(bare), "{} > {size}: {m}", m.len());
                if size >= 64 {
                    // Within about one short field of the size.
                    assert!(m.len() + 12 >= size, "{} for {size}: {m}", m.len());
                }
                assert_eq!(m, json_message(seq, 123_456_789_012, size, 1));
            }
        }
        assert_ne!(json_message(1, 0, 4096, 1), json_message(2, 0, 4096, 1));
        assert_ne!(json_message(1, 0, 4096, 1), json_message(1, 0, 4096, 2));
    }

    #[test]
    fn json_compresses_like_json() {
        // Realistic: far less than x padding's hundredfold, better than nothing.
        let m = json_message(7, 1_000_000_000, 4096, 1);
        let packed = crate::deflate::Deflater::new(15)
            .compress(m.as_bytes())
            .unwrap();
        let ratio = packed.len() as f64 / m.len() as f64;
        assert!((0.1..0.6).contains(&ratio), "{ratio}: {m}");
    }

    #[test]
    fn kinds() {
        assert_eq!("pad".parse(), Ok(PayloadKind::Pad));
        assert_eq!("json".parse(), Ok(PayloadKind::Json));
        assert!("x".parse::<PayloadKind>().is_err());
    }
}
