//! This gateway node's id: the name its audit trail, its digests and every event it writes
//! carry, so trails of several nodes on one PostgreSQL state can be told apart, verified one by
//! one and merged (`keyhole audit verify|query` with several trails), and so a job report built
//! from several nodes' records names the node each came from.
//!
//! The id belongs to the data directory, not to the process: it is generated once, at the first
//! start, as `node-` and 12 random hex digits, and kept in `<data-dir>/node-id` (mode 0600). An
//! operator who wants a readable name writes the file before the first start (one line, 1 to 64
//! of `A-Z a-z 0-9 . _ -`); a file with anything else is refused, naming the rule.
//!
//! (The state layer's change log has its own per-process writer id, [`crate::state::State::node_id`]:
//! it only tells a node its own changes apart, and a restart is rightly a new writer there.)

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The file under the data directory holding the node id.
pub const NODE_ID_FILE: &str = "node-id";
/// Longest node id accepted.
pub const MAX_NODE_ID_LEN: usize = 64;

/// The node id file cannot be read, written or is not a node id.
#[derive(Debug, thiserror::Error)]
pub enum NodeIdError {
    /// The file holds something else.
    #[error("`{path}` holds `{found}`, which is not a node id: write one line of 1 to {MAX_NODE_ID_LEN} characters from A-Z a-z 0-9 . _ - (or remove the file to have one generated)")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What it holds (cut to 80 characters).
        found: String,
    },
    /// An I/O failure.
    #[error("cannot {action} the node id file `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Whether `id` is a valid node id.
pub fn is_valid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_NODE_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The node id of the data directory `data_dir`: read from [`NODE_ID_FILE`], or generated and
/// written there (0600) when the file does not exist.
pub fn load_or_create(data_dir: &Path) -> Result<String, NodeIdError> {
    let path = data_dir.join(NODE_ID_FILE);
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| NodeIdError::Io {
            action,
            path,
            source,
        }
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if is_valid(id) {
                Ok(id.to_owned())
            } else {
                Err(NodeIdError::Invalid {
                    found: id.chars().take(80).collect(),
                    path,
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("node-{}", hex::encode(rand::random::<[u8; 6]>()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(crate::datadir::FILE_MODE)
                .open(&path)
                .map_err(io("create", &path))?;
            f.write_all(format!("{id}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io("write", &path))?;
            Ok(id)
        }
        Err(e) => Err(io("read", &path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert!(first.starts_with("node-") && first.len() == 17, "{first}");
        assert!(is_valid(&first));
        assert_eq!(load_or_create(dir.path()).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(NODE_ID_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_operator_chosen_id_is_used_and_a_bad_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(NODE_ID_FILE), "gw-eu.1\n").unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), "gw-eu.1");
        std::fs::write(dir.path().join(NODE_ID_FILE), "gw eu/1\n").unwrap();
        let e = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("gw eu/1") && e.contains("A-Z a-z 0-9"), "{e}");
        std::fs::write(dir.path().join(NODE_ID_FILE), "").unwrap();
        assert!(load_or_create(dir.path()).is_err());
        assert!(!is_valid(&"a".repeat(MAX_NODE_ID_LEN + 1)));
    }
}
