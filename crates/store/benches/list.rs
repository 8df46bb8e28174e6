//! ListObjectsV2 page latency on a 1,000,000-key index.
//!
//! Run: `cargo bench -p keyhole-store --features bench-support --bench list`
//!
//! Keys are `shard-XXX/file-YYYYYY` (1000 shards of 1000 keys). They are recorded with the
//! index-only bulk insert `LocalStore::bench_insert_index_only` (feature `bench-support`):
//! listing reads only the index, so no bodies are needed.

#![expect(
    clippy::expect_used,
    reason = "a benchmark whose setup fails must stop"
)]
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented pub fn"
)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use keyhole_store::{ListEntry, ListQuery, LocalStore};

const SHARDS: usize = 1000;
const PER_SHARD: usize = 1000;

/// Builds the index once, then measures three kinds of page.
fn bench_list(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(dir.path()).expect("open");
    store.create_bucket("bench", "us-east-1").expect("bucket");
    let t = Instant::now();
    let keys =
        (0..SHARDS).flat_map(|s| (0..PER_SHARD).map(move |f| format!("shard-{s:03}/file-{f:06}")));
    let n = store
        .bench_insert_index_only("bench", keys, 1024)
        .expect("bulk insert");
    eprintln!("indexed {n} keys in {:?}", t.elapsed());

    let mut g = c.benchmark_group("list_1m");
    // 1000 common prefixes, each hiding 1000 keys: one seek per prefix.
    let q = ListQuery {
        prefix: String::new(),
        delimiter: Some("/".into()),
        start_after: None,
        max_keys: 1000,
    };
    let page = store.list("bench", &q).expect("list");
    assert_eq!(page.entries.len(), 1000);
    assert!(page
        .entries
        .iter()
        .all(|e| matches!(e, ListEntry::CommonPrefix(_))));
    g.bench_function("delimiter_root_1000_prefixes", |b| {
        b.iter(|| black_box(store.list("bench", black_box(&q)).expect("list")))
    });

    // 1000 objects under one prefix, with the delimiter.
    let q = ListQuery {
        prefix: "shard-500/".into(),
        delimiter: Some("/".into()),
        start_after: None,
        max_keys: 1000,
    };
    let page = store.list("bench", &q).expect("list");
    assert_eq!(page.entries.len(), 1000);
    assert!(!page.is_truncated);
    g.bench_function("prefix_delimiter_1000_objects", |b| {
        b.iter(|| black_box(store.list("bench", black_box(&q)).expect("list")))
    });

    // A page deep in the keyspace: continuation after a key in the middle.
    let q = ListQuery {
        prefix: String::new(),
        delimiter: None,
        start_after: Some("shard-777/file-000500".into()),
        max_keys: 1000,
    };
    let page = store.list("bench", &q).expect("list");
    assert_eq!(page.entries.len(), 1000);
    assert!(page.is_truncated);
    g.bench_function("no_delimiter_start_after_mid_1000_objects", |b| {
        b.iter(|| black_box(store.list("bench", black_box(&q)).expect("list")))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // Criterion generates an undocumented `pub fn benches`; docs cannot be attached.
    config = Criterion::default().sample_size(50);
    targets = bench_list
}
criterion_main!(benches);
