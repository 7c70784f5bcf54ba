//! Settings shared by the property tests (the crate's, and the integration tests' through
//! `#[path]`).

use proptest::prelude::ProptestConfig;

/// `cases` random cases per property, or `PROPTEST_CASES` when it is set (a long local run);
/// no failure files are written into the source tree (a failure prints its minimal input).
pub fn cases(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: match std::env::var_os("PROPTEST_CASES") {
            Some(_) => default.cases,
            None => cases,
        },
        failure_persistence: None,
        ..default
    }
}
