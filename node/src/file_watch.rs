//! Noticing that files a node reads at start have changed since, such as
//! a Kubernetes Secret updated in place (the kubelet swaps a `..data`
//! symlink, so files are looked at through symlinks).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::sync::lock;

/// What identifies a version of each watched file: inode, length and
/// modification time (`None` for a file that cannot be looked at).
type Stamp = Vec<Option<(u64, u64, i64, i64)>>;

/// Some files of one directory, as last looked at.
#[derive(Debug)]
pub struct FileWatch {
    dir: PathBuf,
    files: &'static [&'static str],
    seen: Mutex<Stamp>,
}

impl FileWatch {
    /// Watches `files` of `dir`, as they are now.
    pub fn new(dir: &Path, files: &'static [&'static str]) -> Self {
        Self {
            dir: dir.to_path_buf(),
            files,
            seen: Mutex::new(stamp(dir, files)),
        }
    }

    /// The watched directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether any of the files changed since the last call (or since
    /// [`FileWatch::new`]); a change is reported once.
    pub fn changed(&self) -> bool {
        let now = stamp(&self.dir, self.files);
        let mut seen = lock(&self.seen);
        if *seen == now {
            return false;
        }
        *seen = now;
        true
    }
}

/// The current [`Stamp`] of `files` in `dir`.
fn stamp(dir: &Path, files: &[&str]) -> Stamp {
    files
        .iter()
        .map(|file| {
            let meta = std::fs::metadata(dir.join(file)).ok()?;
            Some((meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_reported_once_and_a_new_file_counts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "1").unwrap();
        let watch = FileWatch::new(dir.path(), &["a", "b"]);
        assert!(!watch.changed(), "nothing changed");
        std::fs::write(dir.path().join("a"), "22").unwrap();
        assert!(watch.changed());
        assert!(!watch.changed(), "reported once");
        std::fs::write(dir.path().join("b"), "new").unwrap();
        assert!(watch.changed(), "a file that appeared");
    }
}
