//! CPU-heavy work (tens of milliseconds: parsing a large inventory, fingerprinting every
//! camera) run so that the runtime's other tasks move to another thread meanwhile, where there
//! is one.

pub(crate) fn run<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
