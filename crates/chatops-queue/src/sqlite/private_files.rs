//! File modes of the queue's data: the database and its WAL hold `response_url`s, which are
//! bearer tokens (5 posts within 30 minutes), so only the bot's own user may read them.
//!
//! - A data directory we create is 0700. An existing one is left as it is (it may be `/tmp`
//!   or a home directory, which we must not lock others out of) and a warning names it
//!   when others can enter it; the files inside are protected on their own.
//! - `queue.db` is created 0600 before SQLite opens it, since SQLite gives its `-wal` and
//!   `-shm` files the database file's mode. Files we own that are looser (written by an
//!   older version) are tightened to 0600, and so is `queue.db.lock`.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::QueueError;

/// Mode of the data directory when we create it.
pub(super) const DIR_MODE: u32 = 0o700;
/// Mode of every queue file.
pub(super) const FILE_MODE: u32 = 0o600;

/// Group and other permission bits.
const OTHERS: u32 = 0o077;

fn unavailable(what: &str, path: &Path, e: std::io::Error) -> QueueError {
    QueueError::unavailable(format!("{what} {}", path.display()), e)
}

/// Creates `dir` (and missing parents) 0700; warns about an existing one others can enter.
pub(super) fn ensure_private_dir(dir: &Path) -> Result<(), QueueError> {
    match std::fs::metadata(dir) {
        Ok(meta) => {
            if meta.permissions().mode() & OTHERS != 0 {
                tracing::warn!(
                    path = %dir.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    "the queue's data directory is accessible to other users; its files are 0600, but consider chmod 700"
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).map_err(|e| unavailable("creating", dir, e))
        }
        Err(e) => Err(unavailable("reading", dir, e)),
    }
}

/// Creates `path` empty with mode 0600 if it does not exist, or tightens it to 0600.
pub(super) fn ensure_private_file(path: &Path) -> Result<(), QueueError> {
    match OpenOptions::new().write(true).create_new(true).mode(FILE_MODE).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => tighten(path),
        Err(e) => Err(unavailable("creating", path, e)),
    }
}

/// Tightens an existing file to 0600; a missing one is fine.
pub(super) fn tighten(path: &Path) -> Result<(), QueueError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & OTHERS != 0 => {
            std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE))
                .map_err(|e| unavailable("restricting the permissions of", path, e))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(unavailable("reading", path, e)),
    }
}

/// `<db><suffix>`, e.g. `queue.db-wal`.
pub(super) fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_is_0700_and_an_existing_one_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let fresh = root.path().join("a/b");
        ensure_private_dir(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700, "created parents too");
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&shared).unwrap();
        assert_eq!(mode(&shared), 0o755);
    }

    #[test]
    fn files_are_created_0600_and_loose_ones_tightened() {
        let root = tempfile::tempdir().unwrap();
        let db = root.path().join("queue.db");
        ensure_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        ensure_private_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        tighten(&sibling(&db, "-wal")).unwrap();
        assert!(!sibling(&db, "-wal").exists(), "tighten creates nothing");
    }
}
