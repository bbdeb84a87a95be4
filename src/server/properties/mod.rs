//! Properties of request-head classification ([`parse_head`] in `handshake.rs`, and the
//! door's rules for what each kind of head gets on each kind of port, `door/conn.rs`), on
//! generated heads ([`heads`]), without sockets. Each case takes microseconds, so the counts
//! are high; `PROPTEST_CASES` raises them (`make fuzz`). `tests/properties.rs` sends the same
//! heads to a real server, with fewer cases.

use std::cell::RefCell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;

use super::config::ServerConfig;
use super::handshake::{parse_head, Head, Request};
use crate::proptest_runner::{full, runner};

mod examples;
mod heads;
mod rules;

use rules::{Kind, WellFormed};

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 2000;

/// Every status the door answers a head with (`handshake.rs` and `door/conn.rs`; `408` and
/// `503` come from deadlines and caps, not from a head).
const STATUSES: [u16; 6] = [400, 403, 411, 413, 426, 431];

/// What a port takes.
#[derive(Debug, Clone, Copy)]
struct Port {
    websocket: bool,
    http: bool,
}

/// A `Ws` port, an `Http` port, and both on one address (SPEC 1).
const PORTS: [Port; 3] = [
    Port {
        websocket: true,
        http: false,
    },
    Port {
        websocket: false,
        http: true,
    },
    Port {
        websocket: true,
        http: true,
    },
];

/// What the door does with a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Upgrade,
    /// A plain request, whose body has this many bytes.
    Request(u64),
    Status(u16),
}

/// The door's limits: the defaults.
struct Limits {
    max_head: usize,
    max_body: u64,
}

impl Limits {
    fn new() -> Limits {
        let config = ServerConfig::default();
        Limits {
            max_head: config.max_request_head,
            max_body: config.max_http_body as u64,
        }
    }

    /// The door's rules (`on_head`, `classify` and `begin_request` in `door/conn.rs`) applied
    /// to what `parse_head` made of `input`; `None` while it waits for more.
    fn door(&self, input: &[u8], head: &Head, port: Port) -> Option<Answer> {
        let (len, outcome) = match head {
            Head::Partial if input.len() > self.max_head => return Some(Answer::Status(431)),
            Head::Partial => return None,
            Head::Complete { len, outcome } => (*len, outcome),
        };
        if len > self.max_head {
            return Some(Answer::Status(431));
        }
        Some(match outcome {
            Request::Upgrade(_) if port.websocket => Answer::Upgrade,
            Request::Upgrade(_) => Answer::Status(400),
            Request::Http(plain) if port.http => match plain.body_length() {
                Err(refusal) => Answer::Status(refusal.status),
                Ok(n) => self.body_answer(n),
            },
            Request::Http(_) => Answer::Status(426),
            Request::Refuse(refusal) => Answer::Status(refusal.status),
        })
    }

    fn body_answer(&self, length: u64) -> Answer {
        match length > self.max_body {
            true => Answer::Status(413),
            false => Answer::Request(length),
        }
    }

    /// The answers the model allows for a well-formed head on `port`.
    fn allowed(&self, head: &WellFormed, kinds: &[Kind], port: Port) -> Vec<Answer> {
        if head.len > self.max_head {
            return vec![Answer::Status(431)];
        }
        let mut answers: Vec<Answer> = (kinds.iter())
            .flat_map(|kind| match kind {
                Kind::Upgrade if port.websocket => vec![Answer::Upgrade],
                Kind::Upgrade => vec![Answer::Status(400)],
                Kind::Http if port.http => (head.body().into_iter())
                    .map(|body| match body {
                        Ok(n) => self.body_answer(n),
                        Err(status) => Answer::Status(status),
                    })
                    .collect(),
                Kind::Http => vec![Answer::Status(426)],
                Kind::NotUpgrade if port.http => vec![],
                Kind::NotUpgrade => vec![Answer::Status(426)],
                Kind::Refuse(status) => vec![Answer::Status(*status)],
            })
            .collect();
        answers.sort();
        answers.dedup();
        answers
    }
}

/// The origins a server is configured with: any, or only the heads' own.
fn origins(restricted: bool) -> Option<Vec<String>> {
    restricted.then(|| vec![heads::ORIGIN.to_owned()])
}

/// Whether `bytes` hold an empty line after the empty lines a head may start with: the end
/// of a head, for a parser that has not failed before it.
fn has_blank_line(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let [b'\r', b'\n', tail @ ..] | [b'\n', tail @ ..] = rest {
        rest = tail;
    }
    rest.windows(2).any(|w| w == b"\n\n") || rest.windows(3).any(|w| w == b"\n\r\n")
}

/// On any bytes: no panic; `Partial` only without an empty line ending a head, and then
/// for every prefix too; a complete head's length within the input; refusals from the
/// allowed statuses; an upgrade or a plain request decided by the head's own bytes (the same
/// alone, the same with anything after it, `Partial` for every shorter prefix); and the
/// door's answer on every kind of port from the allowed statuses.
#[test]
fn every_head_is_partial_or_decided_by_its_own_bytes() {
    let limits = Limits::new();
    let seen = RefCell::new(BTreeMap::<&'static str, u32>::new());
    let strategy = (
        heads::head_input(),
        any::<bool>(),
        any::<Index>(),
        prop::collection::vec(any::<u8>(), 0..16),
    );
    runner(CASES)
        .run(&strategy, |(heads::Bytes(input), restricted, cut, tail)| {
            let origins = origins(restricted);
            let parse = |bytes: &[u8]| parse_head(bytes, origins.as_deref());
            let head = parse(&input);
            let shown = String::from_utf8_lossy(&input);
            let name = match &head {
                Head::Partial => {
                    prop_assert!(!has_blank_line(&input), "partial: {:?}", shown);
                    let prefix = &input[..cut.index(input.len() + 1)];
                    prop_assert_eq!(parse(prefix), Head::Partial, "a prefix of {:?}", shown);
                    "partial"
                }
                Head::Complete { len, outcome } => {
                    let len = *len;
                    prop_assert!(0 < len && len <= input.len(), "len {} of {:?}", len, shown);
                    match outcome {
                        Request::Refuse(refusal) => {
                            prop_assert!(
                                STATUSES.contains(&refusal.status),
                                "{:?} for {:?}",
                                refusal,
                                shown
                            );
                            "refused"
                        }
                        Request::Upgrade(_) | Request::Http(_) => {
                            let own = &input[..len];
                            prop_assert!(has_blank_line(own), "no end in {:?}", shown);
                            prop_assert_eq!(&parse(own), &head, "alone: {:?}", shown);
                            let mut longer = own.to_vec();
                            longer.extend_from_slice(&tail);
                            prop_assert_eq!(&parse(&longer), &head, "followed: {:?}", shown);
                            let shorter = &own[..cut.index(len)];
                            prop_assert_eq!(parse(shorter), Head::Partial, "cut: {:?}", shown);
                            let last = parse(&own[..len - 1]);
                            prop_assert_eq!(last, Head::Partial, "cut last: {:?}", shown);
                            match outcome {
                                Request::Upgrade(_) => "upgrade",
                                _ => "http",
                            }
                        }
                    }
                }
            };
            *seen.borrow_mut().entry(name).or_default() += 1;
            for port in PORTS {
                if let Some(Answer::Status(status)) = limits.door(&input, &head, port) {
                    prop_assert!(STATUSES.contains(&status), "{} for {:?}", status, shown);
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = seen.into_inner();
    eprintln!("{seen:?}");
    assert!(
        seen.len() == 4 || !full(CASES),
        "the generator missed a kind of head: {seen:?}"
    );
}

/// Heads from parts, a third of them mutated a little: most of them well formed.
fn well_formed_mostly() -> impl Strategy<Value = heads::Bytes> {
    prop_oneof![
        2 => heads::parts().prop_map(|parts| heads::Bytes(parts.render())),
        1 => heads::mutated_parts(),
    ]
}

/// On heads written as RFC 9112 writes them (most generated ones, mutated or not): the
/// outcome, its details, and the door's answer on every kind of port are among those the
/// model ([`rules`]) allows.
#[test]
fn well_formed_heads_are_classified_by_the_rules() {
    let limits = Limits::new();
    let seen = RefCell::new(BTreeMap::<String, u32>::new());
    runner(CASES)
        .run(
            &(well_formed_mostly(), any::<bool>()),
            |(heads::Bytes(input), restricted)| {
                let origins = origins(restricted);
                let head = parse_head(&input, origins.as_deref());
                let Some(model) = rules::well_formed(&input) else {
                    *seen
                        .borrow_mut()
                        .entry("not well formed".into())
                        .or_default() += 1;
                    return Ok(());
                };
                let Some(kinds) = model.kinds(origins.as_deref()) else {
                    *seen.borrow_mut().entry("open".into()).or_default() += 1;
                    return Ok(());
                };
                let shown = String::from_utf8_lossy(&input);
                check_details(&model, &head, &shown)?;
                for port in PORTS {
                    let answer = limits.door(&input, &head, port);
                    let allowed = limits.allowed(&model, &kinds, port);
                    prop_assert!(
                        answer.is_some_and(|a| allowed.contains(&a)),
                        "{:?} on {:?}: {:?}, the model allows {:?} (kinds {:?})",
                        shown,
                        port,
                        answer,
                        allowed,
                        kinds
                    );
                    let name = match answer {
                        Some(Answer::Request(_)) => "request".to_owned(),
                        other => format!("{other:?}"),
                    };
                    *seen.borrow_mut().entry(name).or_default() += 1;
                }
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = seen.into_inner();
    eprintln!("{seen:?}");
    for answer in ["Some(Upgrade)", "request"]
        .into_iter()
        .map(str::to_owned)
        .chain(STATUSES.iter().map(|s| format!("Some(Status({s}))")))
    {
        assert!(
            seen.contains_key(&answer) || !full(CASES),
            "the generator never led to {answer}: {seen:?}"
        );
    }
}

/// An upgrade's path, accept key and subprotocols, and a plain request's parts, as the
/// model reads them; the length is the whole head.
fn check_details(model: &WellFormed, head: &Head, shown: &str) -> Result<(), TestCaseError> {
    let Head::Complete { len, outcome } = head else {
        return Err(TestCaseError::fail(format!("partial: {shown:?}")));
    };
    if model.headers.len() > rules::MAX_HEADERS {
        return Ok(());
    }
    match outcome {
        Request::Upgrade(upgrade) => {
            prop_assert_eq!(*len, model.len, "length of {:?}", shown);
            let (path, _) = crate::protocol::url::split_target(&model.target).expect("a path");
            prop_assert_eq!(&upgrade.path, &path);
            let key = model.lines("Sec-WebSocket-Key")[0];
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            prop_assert_eq!(&upgrade.accept, &accept);
            prop_assert_eq!(&upgrade.protocols, &model.list("Sec-WebSocket-Protocol"));
        }
        Request::Http(plain) => {
            prop_assert_eq!(*len, model.len, "length of {:?}", shown);
            prop_assert_eq!(&plain.method, &model.method);
            prop_assert_eq!(&plain.target, &model.target);
            prop_assert_eq!(plain.minor_version, model.minor);
            prop_assert_eq!(&plain.headers, &model.headers);
            let body = plain.body_length().map_err(|refusal| refusal.status);
            prop_assert!(
                model.body().contains(&body),
                "body {:?} of {:?}",
                body,
                shown
            );
        }
        Request::Refuse(_) => {}
    }
    Ok(())
}
