//! Writing an output file the user named (`plan --out`, `discover --out`) safely.
//!
//! The text goes to a new file in the target's own folder, created exclusively under a random
//! name (so a link planted at a predictable name cannot redirect it), flushed to disk, then
//! renamed over the target. The rename replaces whatever is at the target, a symbolic link
//! included, without following it; a reader sees the old file or the whole new one. The folder
//! is synced afterwards so that the rename itself survives a crash.

use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` through a new file and a rename. The file gets the usual mode
/// (0666 less the umask).
pub fn write_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file",
        ));
    }
    let mut builder = tempfile::Builder::new();
    builder.prefix(".wsusfix-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Symbolic links need a privilege on Windows.
    #[cfg(unix)]
    #[test]
    fn replaces_a_file_and_never_follows_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("plan.json");
        write_replacing(&target, b"one").unwrap();
        write_replacing(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");

        // A link planted at the target (or where a predictable temporary file would go) is
        // replaced, and the file it points to is left alone.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let linked = dir.path().join("linked.txt");
        std::os::unix::fs::symlink(&victim, &linked).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".linked.txt.1234.tmp")).unwrap();
        write_replacing(&linked, b"plan").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(
            !std::fs::symlink_metadata(&linked)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&linked).unwrap(), b"plan");
        // No temporary file is left behind.
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".wsusfix-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_folder_that_does_not_exist_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_replacing(&dir.path().join("no/such/plan.json"), b"x").is_err());
        assert!(write_replacing(dir.path(), b"x").is_err());
    }
}
