//! Property tests through the public API.

use std::collections::BTreeSet;

use keyhole_store::{ListEntry, ListQuery, ObjectMeta};
use proptest::prelude::*;

use crate::common::{md5_hex, open, read_all};

/// Keys mixing path syntax, whitespace and multi-byte characters, up to 1024 bytes.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(
            prop_oneof![
                Just("..".to_owned()),
                Just("/".to_owned()),
                Just(".".to_owned()),
                Just(" ".to_owned()),
                Just("\\".to_owned()),
                Just("é".to_owned()),
                Just("☃".to_owned()),
                Just("😀".to_owned()),
                "[a-z]{1,3}",
            ],
            1..20
        )
        .prop_map(|v| v.concat()),
        "[^\u{0}]{1,40}",
        "[a-z/]{1000,1024}",
    ]
    .prop_filter("at most 1024 bytes", |k| k.len() <= 1024)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// store -> list -> get returns exactly the keys and bodies written.
    #[test]
    fn keys_round_trip(keys in proptest::collection::btree_set(key(), 1..8)) {
        let (_d, s) = open();
        s.create_bucket("bkt", "r").unwrap();
        for (i, k) in keys.iter().enumerate() {
            let mut w = s.new_object("bkt").unwrap();
            w.write(format!("{i}:{k}").as_bytes()).unwrap();
            let info = w.commit(k, ObjectMeta::default(), None).unwrap();
            prop_assert_eq!(&info.key, k);
        }
        let page = s.list("bkt", &ListQuery { max_keys: 1000, ..Default::default() }).unwrap();
        let listed: BTreeSet<String> = page.entries.iter().map(|e| match e {
            ListEntry::Object(o) => o.key.clone(),
            ListEntry::CommonPrefix(p) => panic!("no delimiter, yet prefix {p:?}"),
        }).collect();
        prop_assert_eq!(&listed, &keys);
        let names: Vec<&str> = page.entries.iter().map(ListEntry::name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        prop_assert_eq!(names, sorted);
        for (i, k) in keys.iter().enumerate() {
            let body = read_all(&s, "bkt", k);
            let etag = md5_hex(&body);
            prop_assert_eq!(body, format!("{i}:{k}").into_bytes());
            prop_assert_eq!(s.head("bkt", k).unwrap().etag, etag);
        }
    }
}
