//! The deployment's account: its 12-digit id, master key and root credentials, created on first
//! start and reused afterwards.
//!
//! # Security
//! The master key and the root credentials are written with mode 0600 through a temp file and a
//! rename, so a crash never leaves a half-written secret and no other local user can read them.
//! The root secret is held in a [`SecretKey`], whose `Debug` is redacted.

use std::io::Write;
use std::path::{Path, PathBuf};

use keyhole_sigv4::SecretKey;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// File (under the data directory) with the account id and the root access key id.
pub const ACCOUNT_FILE: &str = "account.json";
/// File with the 32-byte master key, hex encoded.
pub const MASTER_KEY_FILE: &str = "master.key";
/// File with the root credentials, AWS shared-credentials format, profile `default`.
pub const ROOT_CREDENTIALS_FILE: &str = "root-credentials";

/// What `account.json` holds (no secrets).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountRecord {
    /// 12-digit AWS-style account id.
    pub account_id: String,
    /// The root user's access key id.
    pub root_access_key_id: String,
    /// When the account was created (RFC 3339).
    pub created: String,
}

/// The loaded account.
#[derive(Debug, Clone)]
pub struct Account {
    /// The record from `account.json`.
    pub record: AccountRecord,
    /// The root user's secret access key.
    pub root_secret: SecretKey,
    /// The master key (unused by this release beyond its creation; sealing and encryption use it).
    pub master_key: SecretKey,
    /// Where the root credentials file is.
    pub root_credentials_path: PathBuf,
    /// True when this start created the account.
    pub created_now: bool,
}

/// Why the account could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// An I/O failure on one of the account files.
    #[error("cannot {action} `{path}`: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The audit trail's genesis could not be written while creating the account.
    #[error("cannot start the audit trail of the new account: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// A file exists but does not have the expected content.
    #[error("`{path}` is damaged: {reason}; restore it from a backup, or move the data directory aside to start a new account")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl Account {
    /// Loads the account from `data_dir`, creating it (and the directory) on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Account, AccountError> {
        Account::load_or_create_with(data_dir, |_| Ok(()))
    }

    /// As [`Account::load_or_create`], and when it creates the account, runs `before_commit`
    /// (the audit trail's signed genesis) after the secrets are written and before
    /// `account.json`, whose presence means the account is complete: a crash in between leaves
    /// no account, and the next start creates it again.
    pub fn load_or_create_with(
        data_dir: &Path,
        before_commit: impl FnOnce(&AccountRecord) -> Result<(), AccountError>,
    ) -> Result<Account, AccountError> {
        crate::datadir::create_private_dir_all(data_dir).map_err(|source| AccountError::Io {
            action: "create the data directory",
            path: data_dir.to_owned(),
            source,
        })?;
        let account_path = data_dir.join(ACCOUNT_FILE);
        if account_path.exists() {
            return Account::load(data_dir);
        }
        let master: [u8; 32] = rand::thread_rng().gen();
        write_private(&data_dir.join(MASTER_KEY_FILE), &hex::encode(master))?;
        let (record, secret) = AccountRecord::fresh();
        write_root_credentials(data_dir, &record, secret.expose())?;
        let json = serde_json::to_string_pretty(&record).map_err(|e| AccountError::Damaged {
            path: account_path.clone(),
            reason: e.to_string(),
        })?;
        before_commit(&record)?;
        // Written last: its presence means the other two files are complete.
        write_private(&account_path, &json)?;
        let mut account = Account::load(data_dir)?;
        account.created_now = true;
        Ok(account)
    }

    /// A node of a shared state (PostgreSQL): the account is the database's (`record` and
    /// `root_secret`, adopted or created by [`crate::state::State::join`]) and the master key
    /// comes from the operator's file, never from the data directory. The data directory keeps
    /// the account's record and root credentials, written with the audit trail's genesis
    /// (`before_commit`) on the first start in it; a data directory of another account is
    /// refused.
    pub fn adopt_with(
        data_dir: &Path,
        record: AccountRecord,
        root_secret: SecretKey,
        master_key: SecretKey,
        before_commit: impl FnOnce(&AccountRecord) -> Result<(), AccountError>,
    ) -> Result<Account, AccountError> {
        crate::datadir::create_private_dir_all(data_dir).map_err(|source| AccountError::Io {
            action: "create the data directory",
            path: data_dir.to_owned(),
            source,
        })?;
        let account_path = data_dir.join(ACCOUNT_FILE);
        let created_now = if account_path.exists() {
            let text = read(&account_path)?;
            let mine: AccountRecord =
                serde_json::from_str(&text).map_err(|e| AccountError::Damaged {
                    path: account_path.clone(),
                    reason: e.to_string(),
                })?;
            if mine.account_id != record.account_id {
                return Err(AccountError::Damaged {
                    path: account_path,
                    reason: format!(
                        "this data directory belongs to account {}, the shared state to account {}; give this node an empty data directory",
                        mine.account_id, record.account_id
                    ),
                });
            }
            false
        } else {
            before_commit(&record)?;
            true
        };
        write_root_credentials(data_dir, &record, root_secret.expose())?;
        if created_now {
            let json =
                serde_json::to_string_pretty(&record).map_err(|e| AccountError::Damaged {
                    path: account_path.clone(),
                    reason: e.to_string(),
                })?;
            write_private(&account_path, &json)?;
        }
        Ok(Account {
            record,
            root_secret,
            master_key,
            root_credentials_path: data_dir.join(ROOT_CREDENTIALS_FILE),
            created_now,
        })
    }

    /// Loads an existing account; never creates one (for commands that only read).
    pub fn open_existing(data_dir: &Path) -> Result<Account, AccountError> {
        Account::load(data_dir)
    }

    fn load(data_dir: &Path) -> Result<Account, AccountError> {
        let account_path = data_dir.join(ACCOUNT_FILE);
        let text = read(&account_path)?;
        let record: AccountRecord =
            serde_json::from_str(&text).map_err(|e| AccountError::Damaged {
                path: account_path.clone(),
                reason: e.to_string(),
            })?;
        let master_path = data_dir.join(MASTER_KEY_FILE);
        let master_hex = read(&master_path)?;
        let master = hex::decode(master_hex.trim())
            .ok()
            .filter(|m| m.len() == 32)
            .ok_or_else(|| AccountError::Damaged {
                path: master_path.clone(),
                reason: "expected 64 hex digits".into(),
            })?;
        let creds_path = data_dir.join(ROOT_CREDENTIALS_FILE);
        let creds = read(&creds_path)?;
        let (id, secret) =
            parse_shared_credentials(&creds).ok_or_else(|| AccountError::Damaged {
                path: creds_path.clone(),
                reason: "no [default] profile with aws_access_key_id and aws_secret_access_key"
                    .into(),
            })?;
        if id != record.root_access_key_id {
            return Err(AccountError::Damaged {
                path: creds_path,
                reason: format!("its access key id does not match the one in {ACCOUNT_FILE}"),
            });
        }
        Ok(Account {
            record,
            root_secret: SecretKey::new(secret),
            master_key: SecretKey::new(hex::encode(master)),
            root_credentials_path: creds_path,
            created_now: false,
        })
    }
}

impl AccountRecord {
    /// A new account's record (random id and root access key) and its root secret.
    pub fn fresh() -> (AccountRecord, SecretKey) {
        let account_id = format!(
            "{:012}",
            rand::thread_rng().gen_range(100_000_000_000u64..1_000_000_000_000)
        );
        let record = AccountRecord {
            account_id,
            root_access_key_id: new_id("AKIA", 16),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        (record, SecretKey::new(new_secret()))
    }
}

fn write_root_credentials(
    data_dir: &Path,
    record: &AccountRecord,
    secret: &str,
) -> Result<(), AccountError> {
    let creds = format!(
        "# keyhole root credentials for account {}. Use them to bootstrap an admin user, then keep them offline.\n[default]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n",
        record.account_id, record.root_access_key_id
    );
    write_private(&data_dir.join(ROOT_CREDENTIALS_FILE), &creds)
}

/// Reads the 32-byte master key (64 hex digits) from `path`, creating it (0600, random) when it
/// does not exist. Of several nodes creating it at once, one wins and the others read its key:
/// the file is written aside and linked into place, which fails if it appeared meanwhile.
pub fn load_or_create_master_key(path: &Path) -> Result<(Vec<u8>, SecretKey), AccountError> {
    if !path.exists() {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let key: [u8; 32] = rand::thread_rng().gen();
        write_private(&tmp, &hex::encode(key))?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(AccountError::Io {
                    action: "create",
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }
    let text = read(path)?;
    let key = hex::decode(text.trim())
        .ok()
        .filter(|m| m.len() == 32)
        .ok_or_else(|| AccountError::Damaged {
            path: path.to_owned(),
            reason: "expected 64 hex digits (a 32-byte key)".into(),
        })?;
    let hex_key = SecretKey::new(hex::encode(&key));
    Ok((key, hex_key))
}

/// Alphabet of AWS access key ids and unique ids (upper-case base32).
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Alphabet of secret access keys.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| {
            let i = rng.gen_range(0..alphabet.len());
            alphabet.get(i).copied().map(char::from).unwrap_or('A')
        })
        .collect()
}

/// An id in AWS's style: a 4-letter prefix (`AKIA`, `ASIA`, `AIDA`, `AROA`, `ANPA`) and `len`
/// random base32 characters. Used for root, user and session access keys and entity ids.
pub fn new_id(prefix: &str, len: usize) -> String {
    format!("{prefix}{}", random_string(len, ID_ALPHABET))
}

/// A fresh 40-character secret access key.
pub fn new_secret() -> String {
    random_string(40, SECRET_ALPHABET)
}

/// Reads `aws_access_key_id` and `aws_secret_access_key` from the `[default]` profile.
pub fn parse_shared_credentials(text: &str) -> Option<(String, String)> {
    let mut in_default = false;
    let (mut id, mut secret) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            in_default = line == "[default]";
            continue;
        }
        if !in_default {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_owned()),
                "aws_secret_access_key" => secret = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    Some((id?, secret?))
}

fn read(path: &Path) -> Result<String, AccountError> {
    std::fs::read_to_string(path).map_err(|source| AccountError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

/// Writes a file readable only by its owner, atomically (temp file, fsync, rename).
fn write_private(path: &Path, contents: &str) -> Result<(), AccountError> {
    let io = |action| {
        move |source| AccountError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).map_err(io("create"))?;
    f.write_all(contents.as_bytes()).map_err(io("write"))?;
    f.sync_all().map_err(io("sync"))?;
    std::fs::rename(&tmp, path).map_err(io("rename into place"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_and_second_start_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let a = Account::load_or_create(dir.path()).unwrap();
        assert!(a.created_now);
        assert_eq!(a.record.account_id.len(), 12);
        assert!(a.record.account_id.chars().all(|c| c.is_ascii_digit()));
        assert!(a.record.root_access_key_id.starts_with("AKIA"));
        assert_eq!(a.root_secret.expose().len(), 40);
        let b = Account::load_or_create(dir.path()).unwrap();
        assert!(!b.created_now);
        assert_eq!(a.record, b.record);
        assert_eq!(a.root_secret.expose(), b.root_secret.expose());
    }

    #[cfg(unix)]
    #[test]
    fn secrets_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        Account::load_or_create(dir.path()).unwrap();
        for f in [MASTER_KEY_FILE, ROOT_CREDENTIALS_FILE] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let a = Account::load_or_create(dir.path()).unwrap();
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(a.root_secret.expose()));
    }

    #[test]
    fn damaged_files_are_reported_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        Account::load_or_create(dir.path()).unwrap();
        std::fs::write(dir.path().join(ROOT_CREDENTIALS_FILE), "[other]\n").unwrap();
        let e = Account::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("root-credentials") && e.contains("backup"),
            "{e}"
        );
    }

    #[test]
    fn a_master_key_file_is_created_once_and_read_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let (a, _) = load_or_create_master_key(&path).unwrap();
        let (b, _) = load_or_create_master_key(&path).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(a, b);
        std::fs::write(&path, "short").unwrap();
        let e = load_or_create_master_key(&path).unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
    }

    #[test]
    fn a_shared_account_is_adopted_and_another_accounts_directory_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (record, secret) = AccountRecord::fresh();
        let key = SecretKey::new("00".repeat(32));
        let mut began = 0;
        let a = Account::adopt_with(
            dir.path(),
            record.clone(),
            secret.clone(),
            key.clone(),
            |_| {
                began += 1;
                Ok(())
            },
        )
        .unwrap();
        assert!(a.created_now);
        let b = Account::adopt_with(
            dir.path(),
            record.clone(),
            secret.clone(),
            key.clone(),
            |_| {
                began += 1;
                Ok(())
            },
        )
        .unwrap();
        assert!(!b.created_now);
        assert_eq!(began, 1, "the trail is begun once per data directory");
        let creds = std::fs::read_to_string(dir.path().join(ROOT_CREDENTIALS_FILE)).unwrap();
        assert_eq!(
            parse_shared_credentials(&creds),
            Some((
                record.root_access_key_id.clone(),
                secret.expose().to_owned()
            ))
        );
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
        let (other, other_secret) = AccountRecord::fresh();
        let e = Account::adopt_with(dir.path(), other, other_secret, key, |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty data directory"), "{e}");
    }

    #[test]
    fn shared_credentials_parsing() {
        let t = "[x]\naws_access_key_id=no\n[default]\n aws_access_key_id = AK \naws_secret_access_key=s/+k\n";
        assert_eq!(
            parse_shared_credentials(t),
            Some(("AK".into(), "s/+k".into()))
        );
        assert_eq!(
            parse_shared_credentials("[default]\naws_access_key_id=a\n"),
            None
        );
    }
}
