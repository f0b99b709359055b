//! The data directory holds response_urls (bearer tokens) in the queue file and its WAL:
//! `serve` on a fresh directory makes it 0700 and every queue file 0600 (issue 9, item 5).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_a_fresh_directory_keeps_the_queue_private() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("fresh/data");
    let _bot = BotProcess::start(&data, &root.path().join("bot.log"), &[]);
    assert_eq!(mode(&data), 0o700, "data directory");
    for name in ["queue.db", "queue.db-wal", "queue.db-shm", "queue.db.lock"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
}
