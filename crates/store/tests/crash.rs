//! Crash consistency: a child process writes objects, overwrites, deletes and multipart
//! uploads in a loop and is killed with SIGKILL at random moments, several times over the
//! same store. Afterwards `open` must leave no temp or orphan file, and every listed object
//! and every staged part must be complete and match its ETag. A second, versioned bucket gets
//! versions, delete markers, deletions by version id and versioning suspended and enabled
//! again: every version it lists must be whole, and each keeps exactly its own body.
#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "helpers outside #[test] fns fail the test on error"
)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use keyhole_store::{
    ListEntry, ListQuery, LocalStore, ObjectMeta, StoreError, StoreOptions, VersionEntry,
    VersionQuery, Versioning,
};
use md5::{Digest, Md5};
use rand::Rng;

const ENV: &str = "KEYHOLE_STORE_CRASH_ROOT";
const PART: usize = 1024;

/// Bodies up to 64 KiB (most of the small ones written here) are kept in the index.
fn opts() -> StoreOptions {
    StoreOptions {
        min_part_size: PART as u64,
        ..Default::default()
    }
}

/// The group writer's bodies are 0-8 KiB: about half of them are kept in the index.
const GROUP_INLINE_MAX: u64 = 4096;

fn group_opts() -> StoreOptions {
    StoreOptions {
        inline_max: GROUP_INLINE_MAX,
        ..opts()
    }
}

/// Whether an object has a body file (else its body is in the index).
fn has_file(size: u64, parts_count: Option<u32>, inline_max: u64) -> bool {
    parts_count.is_some() || size > inline_max
}

/// A self-describing body: `len:seed\n` then pseudo-random bytes from `seed`.
fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut out = format!("{len}:{seed}\n").into_bytes();
    let mut x = seed | 1;
    while out.len() < len.max(out.len()) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push((x >> 24) as u8);
    }
    out
}

/// Checks a body against its own header.
fn body_is_whole(b: &[u8]) -> bool {
    let Some(nl) = b.iter().position(|c| *c == b'\n') else {
        return false;
    };
    let head = String::from_utf8_lossy(&b[..nl]).into_owned();
    let Some((len, seed)) = head.split_once(':') else {
        return false;
    };
    match (len.parse::<usize>(), seed.parse::<u64>()) {
        (Ok(len), Ok(seed)) => body(seed, len) == b,
        _ => false,
    }
}

fn md5_hex(b: &[u8]) -> String {
    hex::encode(Md5::digest(b))
}

/// ETag of a body written by the child: plain MD5, or MD5 of the part MD5s when uploaded
/// in `PART`-byte parts.
fn expected_etag(b: &[u8], parts: Option<u32>) -> String {
    match parts {
        None => md5_hex(b),
        Some(n) => {
            let mut h = Md5::new();
            for c in b.chunks(PART) {
                h.update(Md5::digest(c));
            }
            assert_eq!(b.chunks(PART).count(), n as usize);
            format!("{}-{n}", hex::encode(h.finalize()))
        }
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The child: loops over store operations until killed. Run only by the parent test.
#[test]
#[ignore = "helper process for kill9_never_exposes_partial_objects"]
fn crash_child_writer() {
    let Some(root) = std::env::var_os(ENV) else {
        return;
    };
    let s = LocalStore::open_with(Path::new(&root), opts()).unwrap();
    for b in ["crash", "vcrash"] {
        match s.create_bucket(b, "r") {
            Ok(_) | Err(StoreError::BucketAlreadyOwnedByYou) => {}
            Err(e) => panic!("{e}"),
        }
    }
    s.set_versioning("vcrash", Versioning::Enabled).unwrap();
    let mut rng = rand::thread_rng();
    println!("child ready");
    loop {
        let key = format!("k/{}", rng.gen_range(0..24));
        if rng.gen_bool(0.4) {
            versioned_step(&s, &mut rng, &key);
            continue;
        }
        match rng.gen_range(0..10) {
            0..=5 => {
                let b = body(rng.gen(), rng.gen_range(0..300_000));
                let mut w = s.new_object("crash").unwrap();
                for c in b.chunks(rng.gen_range(1000..70_000)) {
                    w.write(c).unwrap();
                }
                let digest = rng.gen_bool(0.5).then(|| Md5::digest(&b).into());
                w.commit(&key, ObjectMeta::default(), digest).unwrap();
            }
            6 => s.delete("crash", &key).unwrap(),
            _ => {
                let b = body(rng.gen(), rng.gen_range(1..6 * PART));
                let id = s
                    .create_multipart("crash", &key, ObjectMeta::default())
                    .unwrap();
                let mut listed = Vec::new();
                for (i, c) in b.chunks(PART).enumerate() {
                    let n = u32::try_from(i + 1).unwrap();
                    let mut w = s.new_part("crash", &key, &id, n).unwrap();
                    w.write(c).unwrap();
                    listed.push((n, w.commit(None).unwrap().etag));
                }
                match rng.gen_range(0..4) {
                    0 => s.abort_multipart("crash", &key, &id).unwrap(),
                    1 => {} // left in progress
                    _ => {
                        s.complete_multipart("crash", &key, &id, &listed).unwrap();
                    }
                }
            }
        }
    }
}

/// One operation on the versioned bucket: a new version, a delete marker, a version removed by
/// its id, or versioning suspended or enabled again.
fn versioned_step(s: &LocalStore, rng: &mut impl Rng, key: &str) {
    match rng.gen_range(0..20) {
        0..=10 => {
            let b = body(rng.gen(), rng.gen_range(0..100_000));
            let mut w = s.new_object("vcrash").unwrap();
            w.write(&b).unwrap();
            w.commit(key, ObjectMeta::default(), None).unwrap();
        }
        11..=13 => {
            s.delete_version("vcrash", key, None, None).unwrap();
        }
        14..=17 => {
            let q = VersionQuery {
                prefix: key.to_owned(),
                max_keys: 1000,
                ..Default::default()
            };
            let page = s.list_versions("vcrash", &q).unwrap();
            let ids: Vec<String> = page
                .entries
                .iter()
                .filter_map(|e| e.position().1.map(str::to_owned))
                .collect();
            if !ids.is_empty() {
                let id = &ids[rng.gen_range(0..ids.len())];
                s.delete_version("vcrash", key, Some(id), None).unwrap();
            }
        }
        18 => s.set_versioning("vcrash", Versioning::Suspended).unwrap(),
        _ => s.set_versioning("vcrash", Versioning::Enabled).unwrap(),
    }
}

#[test]
fn kill9_never_exposes_partial_objects() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    for round in 0..8 {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Wait for the child to be writing, then let it run a random while.
        let mut out = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&seen).contains("child ready") {
            assert_eq!(
                out.read(&mut byte).unwrap(),
                1,
                "child exited early (round {round})"
            );
            seen.push(byte[0]);
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(20..700)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "child was not killed (round {round})");
    }

    let s = LocalStore::open_with(root, opts()).unwrap();
    assert!(
        files_under(&root.join("tmp")).is_empty(),
        "temp files remain"
    );

    let page = s
        .list(
            "crash",
            &ListQuery {
                max_keys: 1000,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!page.is_truncated);
    let mut objects = 0;
    let mut files = 0;
    let inline_max = opts().inline_max;
    for e in &page.entries {
        let ListEntry::Object(info) = e else {
            panic!("no delimiter was given");
        };
        let (got, mut r) = s.get("crash", &info.key).unwrap();
        let mut b = Vec::new();
        r.read_to_end(&mut b).unwrap();
        assert_eq!(b.len() as u64, got.size, "{}", info.key);
        assert!(body_is_whole(&b), "torn body under {}", info.key);
        assert_eq!(got.etag, expected_etag(&b, got.parts_count), "{}", info.key);
        objects += 1;
        files += usize::from(has_file(got.size, got.parts_count, inline_max));
    }
    assert!(objects > 0, "the child never committed anything");

    // Every version of the versioned bucket is whole and readable by its id; each key has at
    // most one current version and one null version.
    let mut versions = 0;
    let mut all: Vec<VersionEntry> = Vec::new();
    let mut q = VersionQuery {
        max_keys: 100,
        ..Default::default()
    };
    loop {
        let page = s.list_versions("vcrash", &q).unwrap();
        all.extend(page.entries.iter().cloned());
        for e in &page.entries {
            let VersionEntry::Object { info, .. } = e else {
                continue;
            };
            let id = info.version_id.as_deref();
            let (got, mut r) = s.get_version("vcrash", &info.key, id).unwrap();
            let mut b = Vec::new();
            r.read_to_end(&mut b).unwrap();
            assert!(body_is_whole(&b), "torn version {id:?} of {}", info.key);
            assert_eq!(got.etag, md5_hex(&b));
            versions += 1;
            files += usize::from(has_file(got.size, got.parts_count, inline_max));
        }
        if !page.is_truncated {
            break;
        }
        q.key_marker = page.next_key_marker;
        q.version_id_marker = page.next_version_id_marker;
    }
    assert!(versions > 0, "the child never committed a version");
    for key in (0..24).map(|i| format!("k/{i}")) {
        let of_key = |f: &dyn Fn(&VersionEntry) -> bool| {
            all.iter().filter(|e| e.position().0 == key && f(e)).count()
        };
        assert!(
            of_key(&|e| matches!(
                e,
                VersionEntry::Object {
                    is_latest: true,
                    ..
                } | VersionEntry::DeleteMarker {
                    is_latest: true,
                    ..
                }
            )) <= 1
        );
        assert!(of_key(&|e| e.position().1 == Some("null")) <= 1, "{key}");
    }
    assert_eq!(
        files_under(&root.join("blobs")).len(),
        files,
        "orphan blobs remain"
    );
    assert!(files < objects + versions, "no body was kept in the index");

    // Staged parts of uploads left in progress are whole too: complete them and check.
    let uploads = s.list_uploads("crash", "").unwrap();
    let mut staged = 0;
    for u in &uploads {
        let (_, parts) = s.list_parts("crash", &u.key, &u.upload_id).unwrap();
        staged += parts.len();
    }
    assert_eq!(
        files_under(&root.join("uploads")).len(),
        staged,
        "orphan parts remain"
    );
    let dirs = std::fs::read_dir(root.join("uploads")).unwrap().count();
    assert_eq!(dirs, uploads.len(), "orphan upload directories remain");
    for u in uploads {
        let (_, parts) = s.list_parts("crash", &u.key, &u.upload_id).unwrap();
        // Only uploads whose parts are a contiguous, full prefix of the body can complete.
        let contiguous = parts
            .iter()
            .enumerate()
            .all(|(i, p)| p.part_number as usize == i + 1);
        let sizes_ok = parts
            .split_last()
            .is_some_and(|(_, rest)| rest.iter().all(|p| p.size as usize == PART));
        if !(contiguous && sizes_ok) {
            s.abort_multipart("crash", &u.key, &u.upload_id).unwrap();
            continue;
        }
        let listed: Vec<(u32, String)> = parts
            .iter()
            .map(|p| (p.part_number, p.etag.clone()))
            .collect();
        let info = s
            .complete_multipart("crash", &u.key, &u.upload_id, &listed)
            .unwrap();
        let (_, mut r) = s.get("crash", &u.key).unwrap();
        let mut b = Vec::new();
        r.read_to_end(&mut b).unwrap();
        assert_eq!(info.etag, expected_etag(&b, info.parts_count));
        // The child may have been killed before uploading every part; a prefix of a
        // whole body still has the body's header and matching bytes.
        let head_len = b.iter().position(|c| *c == b'\n').unwrap();
        let head = String::from_utf8_lossy(&b[..head_len]).into_owned();
        let (len, seed) = head.split_once(':').unwrap();
        let full = body(seed.parse().unwrap(), len.parse().unwrap());
        assert!(
            full.starts_with(&b),
            "staged parts of {} are corrupt",
            u.key
        );
    }
}

const GROUP_ENV: &str = "KEYHOLE_STORE_GROUP_CRASH_ROOT";

/// The child of `kill9_loses_no_acknowledged_write`: eight threads write objects under keys of
/// their own, each key once, so their commits share transactions (group commit), and print
/// `acked KEY ETAG` for every write once `commit` has returned.
#[test]
#[ignore = "helper process for kill9_loses_no_acknowledged_write"]
fn crash_child_group_writer() {
    let Some(root) = std::env::var_os(GROUP_ENV) else {
        return;
    };
    let s = LocalStore::open_with(Path::new(&root), group_opts()).unwrap();
    match s.create_bucket("group", "r") {
        Ok(_) | Err(StoreError::BucketAlreadyOwnedByYou) => {}
        Err(e) => panic!("{e}"),
    }
    let run: u64 = rand::random();
    println!("child ready");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut rng = rand::thread_rng();
                for n in 0.. {
                    let key = format!("{run:016x}/{t}/{n}");
                    let b = body(rng.gen(), rng.gen_range(0..8192));
                    let mut w = s.new_object("group").unwrap();
                    w.write(&b).unwrap();
                    let info = w.commit(&key, ObjectMeta::default(), None).unwrap();
                    let line = format!("acked {key} {}\n", info.etag);
                    std::io::Write::write_all(&mut std::io::stdout().lock(), line.as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// SIGKILL during concurrent writes that share commits: every write the store acknowledged
/// is there after reopening, whole and with its ETag, and nothing else is left behind.
#[test]
fn kill9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::thread_rng();
    let mut acked = Vec::new();
    for round in 0..5 {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child_group_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(GROUP_ENV, root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = out.read_to_string(&mut all);
            all
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..900)));
        child.kill().unwrap(); // SIGKILL
        assert!(
            !child.wait().unwrap().success(),
            "child was not killed (round {round})"
        );
        let all = reader.join().unwrap();
        assert!(
            all.contains("child ready"),
            "child never started (round {round})"
        );
        // A line cut by the kill is not an acknowledgement.
        for line in all.lines().filter(|l| l.starts_with("acked ")) {
            let mut f = line.split(' ').skip(1);
            if let (Some(k), Some(e), None) = (f.next(), f.next(), f.next()) {
                if e.len() == 32 {
                    acked.push((k.to_owned(), e.to_owned()));
                }
            }
        }
    }
    assert!(acked.len() > 20, "too few writes to judge: {}", acked.len());

    let s = LocalStore::open_with(root, group_opts()).unwrap();
    assert!(
        files_under(&root.join("tmp")).is_empty(),
        "temp files remain"
    );
    for (key, etag) in &acked {
        let (info, mut r) = s
            .get("group", key)
            .unwrap_or_else(|e| panic!("acknowledged {key} is gone: {e}"));
        let mut b = Vec::new();
        r.read_to_end(&mut b).unwrap();
        assert!(body_is_whole(&b), "torn body under {key}");
        assert_eq!(&info.etag, etag, "{key}");
        assert_eq!(&md5_hex(&b), etag, "{key}");
    }
    let mut listed = 0;
    let mut files = 0;
    let mut q = ListQuery {
        max_keys: 1000,
        ..Default::default()
    };
    loop {
        let page = s.list("group", &q).unwrap();
        listed += page.entries.len();
        for e in &page.entries {
            if let ListEntry::Object(info) = e {
                files += usize::from(has_file(info.size, info.parts_count, GROUP_INLINE_MAX));
            }
        }
        if !page.is_truncated {
            break;
        }
        q.start_after = page.next_start_after;
    }
    assert!(listed >= acked.len());
    assert_eq!(
        files_under(&root.join("blobs")).len(),
        files,
        "orphan blobs remain"
    );
    assert!(
        0 < files && files < listed,
        "{files} of {listed} bodies are files"
    );
}
