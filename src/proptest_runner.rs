//! The property tests' runner: each property's default number of cases, which
//! `PROPTEST_CASES` overrides (`make fuzz` raises it). Shared by the properties in the crate
//! (`src/protocol/properties/`, `src/server/properties/`) and, through `#[path]`, by
//! `tests/properties.rs`.

use proptest::test_runner::{Config, TestRunner};

/// Cases per property: `PROPTEST_CASES`, or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether a property runs at least its `default` cases: then it may insist that every kind
/// of case came up.
pub fn full(default: u32) -> bool {
    cases(default) >= default
}

/// A runner for [`cases`] cases that writes no failure files.
pub fn runner(default: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(default),
        failure_persistence: None,
        ..Config::default()
    })
}
