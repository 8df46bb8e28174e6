//! Integration tests of the public API of keyhole-store.
#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] fns fail the test on error"
)]

mod common;

mod buckets;
mod cache;
mod locks;
mod multipart;
mod objects;
mod props;
mod recovery;
mod versions;
