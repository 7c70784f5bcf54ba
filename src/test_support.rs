//! Settings shared by the crate's property tests.

use proptest::prelude::ProptestConfig;

/// `cases` random cases per property, and no failure files written into the source tree (a
/// failure prints its minimal input instead).
pub fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
