//! The one rule for reading a secret from a file (the Slack signing secret for `serve`,
//! `loadtest`, `send` and `sign`; the NATS password): the file's bytes, minus ONE trailing
//! newline (`\n` or `\r\n`, what editors and `echo` add). Nothing else is trimmed, so one
//! file always gives the same secret to every tool. Empty and oversized files are refused
//! (an oversized one is almost certainly the wrong file), and a file that group or others
//! can read is reported so the caller can warn.
//!
//! Only std IO: `chatops-core` stays free of async and of logging; the caller decides how
//! to show the warning.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Secrets longer than this are refused. Slack's signing secrets are 32 hex characters.
pub const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// A secret read from a file.
pub struct SecretFile {
    secret: String,
    /// Set when group or others may read the file (Unix modes `0o077`).
    pub readable_by_others: bool,
}

impl SecretFile {
    pub fn expose(&self) -> &str {
        &self.secret
    }

    pub fn into_secret(self) -> String {
        self.secret
    }

    /// The warning to show when the file's permissions are too open, if they are.
    pub fn permission_warning(&self, path: &Path) -> Option<String> {
        self.readable_by_others.then(|| {
            format!(
                "secret file {} is readable by group or others; restrict it with `chmod 600 {}`",
                path.display(),
                path.display()
            )
        })
    }
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFile")
            .field("secret", &"[redacted]")
            .field("readable_by_others", &self.readable_by_others)
            .finish()
    }
}

/// Why a secret file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("reading secret file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("secret file {path} is empty")]
    Empty { path: PathBuf },
    #[error("secret file {path} is larger than {MAX_SECRET_FILE_BYTES} bytes (is it the right file?)")]
    TooLarge { path: PathBuf },
    #[error("secret file {path} is not UTF-8 text")]
    NotText { path: PathBuf },
}

/// How a caller should react to a [`SecretFileError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretFileErrorKind {
    /// The file could not be read at all.
    Unreadable,
    /// The file was read, and what it holds is not a usable secret.
    Invalid,
}

impl SecretFileError {
    pub fn kind(&self) -> SecretFileErrorKind {
        match self {
            SecretFileError::Read { .. } => SecretFileErrorKind::Unreadable,
            SecretFileError::Empty { .. } | SecretFileError::TooLarge { .. } | SecretFileError::NotText { .. } => {
                SecretFileErrorKind::Invalid
            }
        }
    }
}

/// Reads a secret with the one rule (see the module docs).
pub fn read_secret_file(path: &Path) -> Result<SecretFile, SecretFileError> {
    let read_err = |source| SecretFileError::Read { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let readable_by_others = readable_by_others(&file);
    // One byte more than allowed tells "too large" from "exactly at the limit" without
    // reading a huge file whole.
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 3).read_to_end(&mut bytes).map_err(read_err)?;
    let text = String::from_utf8(bytes).map_err(|_| SecretFileError::NotText { path: path.to_owned() })?;
    let secret = strip_one_newline(&text);
    if secret.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(SecretFileError::TooLarge { path: path.to_owned() });
    }
    if secret.is_empty() {
        return Err(SecretFileError::Empty { path: path.to_owned() });
    }
    Ok(SecretFile { secret: secret.to_owned(), readable_by_others })
}

/// Removes one trailing `\n` or `\r\n`, nothing more.
pub fn strip_one_newline(text: &str) -> &str {
    text.strip_suffix("\r\n").or_else(|| text.strip_suffix('\n')).unwrap_or(text)
}

#[cfg(unix)]
fn readable_by_others(file: &std::fs::File) -> bool {
    use std::os::unix::fs::PermissionsExt;
    file.metadata().is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_file: &std::fs::File) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(contents: &[u8]) -> Result<SecretFile, SecretFileError> {
        let dir = std::env::temp_dir().join(format!(
            "chatops-secret-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, contents).unwrap();
        let result = read_secret_file(&path);
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    #[test]
    fn one_trailing_newline_is_stripped_and_nothing_else() {
        assert_eq!(read(b"abc").unwrap().expose(), "abc", "no newline");
        assert_eq!(read(b"abc\n").unwrap().expose(), "abc", "LF");
        assert_eq!(read(b"abc\r\n").unwrap().expose(), "abc", "CRLF");
        assert_eq!(read(b"abc\n\n").unwrap().expose(), "abc\n", "two newlines keep one");
        assert_eq!(read(b" abc \t\n").unwrap().expose(), " abc \t", "spaces are part of the secret");
        assert_eq!(read(b"abc\ndef\n").unwrap().expose(), "abc\ndef", "not just the first line");
    }

    #[test]
    fn empty_and_oversized_files_are_refused() {
        for empty in [&b""[..], b"\n", b"\r\n"] {
            let err = read(empty).unwrap_err();
            assert!(matches!(err, SecretFileError::Empty { .. }), "{empty:?}: {err}");
            assert_eq!(err.kind(), SecretFileErrorKind::Invalid);
        }
        let at_limit = vec![b'a'; MAX_SECRET_FILE_BYTES as usize];
        assert_eq!(read(&at_limit).unwrap().expose().len(), 4096);
        let mut with_newline = at_limit.clone();
        with_newline.extend(b"\r\n");
        assert_eq!(read(&with_newline).unwrap().expose().len(), 4096, "the newline does not count");
        let err = read(&vec![b'a'; MAX_SECRET_FILE_BYTES as usize + 1]).unwrap_err();
        assert!(matches!(err, SecretFileError::TooLarge { .. }) && err.to_string().contains("4096"), "{err}");
        let err = read(&vec![b'a'; 1 << 20]).unwrap_err();
        assert!(matches!(err, SecretFileError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn a_missing_file_is_unreadable() {
        let err = read_secret_file(Path::new("/nonexistent/chatops/secret")).unwrap_err();
        assert_eq!(err.kind(), SecretFileErrorKind::Unreadable);
        assert!(err.to_string().contains("/nonexistent/chatops/secret"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn open_permissions_are_reported() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("chatops-secret-perm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "abc\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let private = read_secret_file(&path).unwrap();
        assert!(!private.readable_by_others && private.permission_warning(&path).is_none());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = read_secret_file(&path).unwrap();
        assert!(open.readable_by_others);
        assert!(open.permission_warning(&path).unwrap().contains("chmod 600"));
        assert!(!format!("{open:?}").contains("abc"), "Debug redacts the secret");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
