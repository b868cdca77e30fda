//! SQLite on a full disk: the instance reports itself not ready, writes
//! answer 503 (never a 500), and both recover once space returns. The disk is
//! a real 4 MiB tmpfs, so this needs root: ignored by a plain `cargo test`,
//! run by CI with `--include-ignored`.

use std::path::PathBuf;
use std::process::Command;

use latchkey::config::DatabaseUrl;

use crate::helpers::{ALICE_PASSWORD, Options, TestApp};

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(folder: PathBuf) -> Self {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&folder)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs (this test needs root)"
        );
        Self(folder)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes until the disk refuses; returns the file that took the space.
fn fill(folder: &std::path::Path) -> PathBuf {
    use std::io::Write;
    let path = folder.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a small tmpfs; CI runs it with --include-ignored"]
async fn a_full_disk_makes_sqlite_unready_and_writes_answer_503_until_space_returns() {
    let directory = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(directory.path().to_path_buf());
    let url = format!("sqlite://{}/latchkey.db?mode=rwc", disk.0.display());
    let options = Options::customized(move |settings| {
        settings.database.url = DatabaseUrl::parse(&url).unwrap();
    });
    let app = TestApp::spawn_edge_with(options).await;
    assert_eq!(
        app.register("alice", "alice@example.com", ALICE_PASSWORD)
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/ready").await.status(), 200);

    let filler = fill(&disk.0);
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    assert!(ready.headers().contains_key("retry-after"));
    let mut statuses = Vec::new();
    for n in 0..20 {
        let name = format!("user{n}");
        let response = app
            .register(&name, &format!("{name}@example.com"), ALICE_PASSWORD)
            .await;
        statuses.push(response.status().as_u16());
    }
    // A write that still fits may pass; none may fail as a server error.
    assert!(
        statuses.iter().all(|status| matches!(status, 200 | 503)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&503), "{statuses:?}");

    std::fs::remove_file(filler).unwrap();
    assert_eq!(app.get("/ready").await.status(), 200);
    assert_eq!(
        app.register("bob", "bob@example.com", ALICE_PASSWORD)
            .await
            .status(),
        200
    );
}
