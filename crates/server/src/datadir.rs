//! The data directory is private: created mode 0700 with every file in it 0600, whatever the
//! umask, and a gateway refuses to start on a directory that other local users can read, list,
//! enter or write (unless `--allow-shared-data-dir`).
//!
//! # Security
//! The directory holds every object body, the state database (users, policies, sealed secrets),
//! the master key and the root credentials. Modes are given when each file or directory is
//! created (`mode(0o600)` / `mode(0o700)`), so the umask can only make them stricter, never
//! wider. A directory made by an earlier release (0755) is refused with the `chmod` that fixes
//! it: inside a 0700 directory older 0644 files are out of other users' reach too.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every directory the gateway creates.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the gateway creates.
pub const FILE_MODE: u32 = 0o600;

/// The data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Other users have access to it.
    #[error("the data directory `{path}` is mode {mode:04o}: other local users can {what} it, and it holds every object, the state database, the master key and the root credentials. Make it private with `chmod 700 {path}` (or pass --allow-shared-data-dir, KEYHOLE_ALLOW_SHARED_DATA_DIR=true or allow_shared_data_dir = true if sharing it is intended; new files are still created 0600)")]
    Shared {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// What others may do, in words.
        what: &'static str,
    },
    /// Another gateway process is starting or serving with it.
    #[error("the data directory `{0}` is in use by another keyhole process (starting or serving): stop it first, or choose another with --data-dir; nothing was created or changed")]
    InUse(PathBuf),
    /// It exists and is not a directory.
    #[error(
        "the data directory `{0}` exists and is not a directory: choose another with --data-dir"
    )]
    NotADirectory(PathBuf),
    /// An I/O failure.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// What [`prepare`] did.
#[derive(Debug)]
pub struct Prepared {
    /// The outermost directory this start created (the data directory or an ancestor), removed
    /// again with [`Prepared::roll_back`] if the start fails; `None` when the directory existed.
    pub created: Option<PathBuf>,
}

impl Prepared {
    /// Removes what [`prepare`] created, after a failed start: a failed start leaves no data
    /// directory behind.
    pub fn roll_back(self) {
        if let Some(path) = self.created {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove the data directory of a failed start");
            }
        }
    }
}

/// Checks an existing data directory's permissions (refusing a shared one unless
/// `allow_shared`), or creates it (and any missing parent) mode 0700.
pub fn prepare(path: &Path, allow_shared: bool) -> Result<Prepared, DataDirError> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(DataDirError::NotADirectory(path.to_owned()));
            }
            let mode = meta.permissions().mode() & 0o7777;
            if let (Some(what), false) = (shared(mode), allow_shared) {
                return Err(DataDirError::Shared {
                    path: path.to_owned(),
                    mode,
                    what,
                });
            }
            Ok(Prepared { created: None })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let outermost = path
                .ancestors()
                .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
                .last()
                .map(Path::to_owned);
            create_private_dir_all(path).map_err(|source| DataDirError::Io {
                action: "create the data directory",
                path: path.to_owned(),
                source,
            })?;
            Ok(Prepared { created: outermost })
        }
        Err(source) => Err(DataDirError::Io {
            action: "inspect the data directory",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Takes the data directory for this process: an exclusive advisory lock on the directory
/// itself, held until the returned file is dropped (the process ends). Taken before anything is
/// created inside, so two first starts on the same new directory cannot interleave their account
/// files, and a start that loses the race neither creates nor removes anything.
pub fn lock(path: &Path) -> Result<std::fs::File, DataDirError> {
    let dir = std::fs::File::open(path).map_err(|source| DataDirError::Io {
        action: "open the data directory",
        path: path.to_owned(),
        source,
    })?;
    match rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(dir),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(DataDirError::InUse(path.to_owned())),
        Err(e) => Err(DataDirError::Io {
            action: "lock the data directory",
            path: path.to_owned(),
            source: e.into(),
        }),
    }
}

/// What group or other users may do with a directory of this mode, in words; `None` if nothing.
fn shared(mode: u32) -> Option<&'static str> {
    if mode & 0o044 != 0 {
        Some("list and read")
    } else if mode & 0o022 != 0 {
        Some("write to")
    } else if mode & 0o011 != 0 {
        Some("enter")
    } else {
        None
    }
}

/// Creates `path` and any missing parent, each mode 0700 (an existing one is left as it is).
pub fn create_private_dir_all(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Creates `path` empty and mode 0600 if it does not exist (for files another library then
/// opens, such as the SQLite database, whose `-wal` and `-shm` files take its mode).
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_is_private_and_a_failed_start_removes_it() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("a/b/data");
        let prepared = prepare(&data, false).unwrap();
        assert_eq!(
            prepared.created.as_deref(),
            Some(root.path().join("a").as_path())
        );
        for p in [root.path().join("a"), root.path().join("a/b"), data.clone()] {
            assert_eq!(mode_of(&p), 0o700, "{}", p.display());
        }
        create_private_file(&data.join("f")).unwrap();
        assert_eq!(mode_of(&data.join("f")), 0o600);
        prepared.roll_back();
        assert!(!root.path().join("a").exists());
    }

    #[test]
    fn a_shared_directory_is_refused_with_the_fix() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("d");
        std::fs::create_dir(&data).unwrap();
        for (mode, what) in [
            (0o755, "list and read"),
            (0o730, "write to"),
            (0o701, "enter"),
        ] {
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = prepare(&data, false).unwrap_err().to_string();
            assert!(
                e.contains(&format!("mode {mode:04o}"))
                    && e.contains(what)
                    && e.contains(&format!("chmod 700 {}", data.display()))
                    && e.contains("--allow-shared-data-dir"),
                "{e}"
            );
            assert!(prepare(&data, true).unwrap().created.is_none());
        }
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(prepare(&data, false).unwrap().created.is_none());
        let file = root.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(prepare(&file, false)
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }
}
