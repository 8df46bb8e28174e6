//! Free space. Object data never takes the last of the data directory's file system: a write
//! that would leave less than a reserve free is refused as a full disk (`ENOSPC`, which the
//! gateway answers `507 InsufficientStorage`), so the index can still commit (deletes, which
//! free space, among them) and the audit trail can still record. Without it a body that filled
//! the disk could make the index's commit fail, and the index takes no change after a failed
//! write until it is opened again (review 37, F1).

use std::io;
use std::path::Path;

use crate::StoreError;

/// How many bytes a body may grow by between two checks of the free space.
pub(crate) const CHECK_EVERY: u64 = 4 << 20;

/// The reserve kept free on a file system of `total` bytes: 1 % of it, at least 4 MiB and at
/// most 64 MiB.
pub(crate) fn reserve(total: u64) -> u64 {
    (total / 100).clamp(4 << 20, 64 << 20)
}

/// Refuses `incoming` more bytes on `dir`'s file system when they would leave less than its
/// reserve free.
///
/// # Errors
/// [`StoreError::Io`] of kind `StorageFull`, or the error of reading the file system's figures.
pub(crate) fn ensure(dir: &Path, incoming: u64) -> Result<(), StoreError> {
    let st = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    let unit = st.f_frsize.max(1);
    let free = st.f_bavail.saturating_mul(unit);
    let keep = reserve(st.f_blocks.saturating_mul(unit));
    if free < keep.saturating_add(incoming) {
        return Err(StoreError::Io(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "{free} bytes free on the data directory's file system: a write of {incoming} more would leave less than the {keep} kept in reserve"
            ),
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_one_percent_within_bounds() {
        assert_eq!(reserve(0), 4 << 20);
        assert_eq!(reserve(24 << 20), 4 << 20);
        assert_eq!(reserve(1 << 30), (1 << 30) / 100);
        assert_eq!(reserve(1 << 40), 64 << 20);
    }

    #[test]
    fn a_write_larger_than_the_free_space_is_refused_as_a_full_disk() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure(dir.path(), 0).is_ok() || cfg!(not(target_os = "linux")));
        match ensure(dir.path(), u64::MAX / 2) {
            Err(StoreError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::StorageFull),
            other => panic!("{other:?}"),
        }
    }
}
