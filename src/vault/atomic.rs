//! Atomic, private file replacement for the file-based vaults.
//!
//! The temp file is created in the target's directory with mode 0600 *before* any byte is
//! written (so no secret is ever readable by others, even for a moment), synced, then renamed
//! over the target. On any failure the temp file is removed and the target is untouched.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replace `target` with `contents`, atomically, final mode 0600. A symlink target is followed
/// (the file it points to is replaced, the link stays).
pub(crate) fn write_atomic(target: &Path, contents: &[u8]) -> io::Result<()> {
    write_atomic_with(target, |file| file.write_all(contents))
}

/// Like [`write_atomic`], with the content produced by `fill` (tests use it to fail midway).
pub(crate) fn write_atomic_with(
    target: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let target = follow_symlink(target)?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?
        .to_string_lossy()
        .into_owned();
    let (tmp, mut file) = create_private(&dir, &name)?;
    let result = (|| {
        fill(&mut file)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, &target)
    })();
    if let Err(err) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    // Persist the rename itself (best effort: not every platform can open a directory).
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An exclusive lock on `.NAME.lock` beside `target` (created 0600, left in place), held until
/// the returned file is dropped. Read-modify-write of a shared store (several services' secrets
/// in one file, written concurrently by `rotate --all` or two processes) takes it so that no
/// update is lost. Advisory: it only orders writers that take it too.
pub(crate) fn lock_beside(target: &Path) -> io::Result<File> {
    let target = follow_symlink(target)?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?
        .to_string_lossy()
        .into_owned();
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(dir.join(format!(".{name}.lock")))?;
    file.lock()?;
    remove_stale_temps(&dir, &name);
    Ok(file)
}

/// Remove the temp files of `name` that writers killed between writing and renaming left
/// behind (a SIGKILL runs no cleanup). Each holds a full copy of the store, secrets included, so
/// it must not outlive its writer. Called with the lock held: every writer takes the lock
/// before it creates a temp file, so any temp file present now belongs to a dead one.
fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix)
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn follow_symlink(target: &Path) -> io::Result<PathBuf> {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.file_type().is_symlink() => fs::canonicalize(target),
        _ => Ok(target.to_path_buf()),
    }
}

/// A new file `.NAME.tmp-PID-RANDOM` in `dir`, created exclusively with mode 0600.
fn create_private(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let mut last_err = None;
    for _ in 0..8 {
        let tmp = dir.join(format!(
            ".{name}.tmp-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&tmp) {
            Ok(file) => {
                // The umask can only remove bits, but set it explicitly anyway.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if let Err(err) = file.set_permissions(fs::Permissions::from_mode(0o600)) {
                        let _ = fs::remove_file(&tmp);
                        return Err(err);
                    }
                }
                return Ok((tmp, file));
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last_err = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("cannot create a temp file")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_and_sets_0600() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("store.json");
        fs::write(&target, "old").unwrap();
        write_atomic(&target, b"new").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        assert_eq!(entries(dir.path()), vec!["store.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn failure_midway_leaves_target_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(".env");
        fs::write(&target, "KEEP=1\n").unwrap();
        let err = write_atomic_with(&target, |f| {
            f.write_all(b"partial")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(fs::read_to_string(&target).unwrap(), "KEEP=1\n");
        assert_eq!(entries(dir.path()), vec![".env"]);
    }

    #[test]
    fn failed_rename_removes_the_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("occupied");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), "x").unwrap();
        assert!(write_atomic(&target, b"data").is_err());
        assert_eq!(entries(dir.path()), vec!["occupied"]);
    }

    #[test]
    fn the_lock_sweeps_temp_files_a_killed_writer_left() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("vault.json");
        fs::write(&target, "{}").unwrap();
        // What a writer killed before its rename leaves (found by tests/kill.rs).
        fs::write(
            dir.path().join(".vault.json.tmp-4242-0badc0de"),
            "{\"a\": \"s\"}",
        )
        .unwrap();
        fs::write(dir.path().join(".other.json.tmp-4242-0badc0de"), "x").unwrap();
        let lock = lock_beside(&target).unwrap();
        assert_eq!(
            entries(dir.path()),
            vec![
                ".other.json.tmp-4242-0badc0de",
                ".vault.json.lock",
                "vault.json"
            ]
        );
        drop(lock);
    }

    #[cfg(unix)]
    #[test]
    fn follows_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.env");
        fs::write(&real, "A=1\n").unwrap();
        let link = dir.path().join("link.env");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"A=2\n").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "A=2\n");
    }
}
