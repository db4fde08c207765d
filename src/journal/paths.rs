//! Where runs live: `STATE_DIR/<inventory name>-<hash of its path>/` holds the `lock` and
//! `runs/<run id>.jsonl`. Run IDs sort by start time, so the latest run is the greatest.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The folder of one inventory's runs.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run folder for `inventory` under `state_dir`.
    pub fn new(state_dir: &Path, inventory: &Path) -> RunDir {
        let abs = absolute(inventory);
        let digest = Sha256::digest(abs.to_string_lossy().as_bytes());
        let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let stem: String = inventory
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("inventory")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        RunDir {
            root: state_dir.join(format!("{stem}-{hash}")),
        }
    }

    /// The run folder at `root` (as found in the state folder).
    pub fn at(root: &Path) -> RunDir {
        RunDir {
            root: root.to_path_buf(),
        }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The lock file.
    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// A run's journal.
    pub fn journal(&self, run_id: &str) -> PathBuf {
        self.root.join("runs").join(format!("{run_id}.jsonl"))
    }

    /// Every run ID, oldest first (temporary files of a journal being created are not runs).
    pub fn runs(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.root.join("runs"))
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".jsonl")
                    .filter(|id| !id.starts_with('.'))
                    .map(str::to_string)
            })
            .collect();
        ids.sort();
        ids
    }

    /// The latest run, if any.
    pub fn latest(&self) -> Option<String> {
        self.runs().pop()
    }
}

/// A new run ID: UTC start time plus the process ID, sortable by time.
pub fn new_run_id() -> String {
    format!(
        "{}-{:05}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id() % 100_000
    )
}

/// The default state folder, as help texts name it.
pub const DEFAULT_STATE_DIR: &str = if cfg!(windows) {
    "%LOCALAPPDATA%\\wsusfix"
} else {
    "~/.local/state/wsusfix"
};

/// The state folder: `--state-dir`, else `$WSUSFIX_STATE_DIR`, else the user's own state
/// folder, whatever the current folder is (docs/decisions.md): `$XDG_STATE_HOME/wsusfix`, else
/// `~/.local/state/wsusfix` (on Windows `%LOCALAPPDATA%\wsusfix`, else
/// `%USERPROFILE%\AppData\Local\wsusfix`: a per-user folder that other users cannot read by
/// default). Only a machine without a home folder falls back to `.wsusfix` in the current
/// folder.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    let from_env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    flag.map(Path::to_path_buf)
        .or_else(|| from_env("WSUSFIX_STATE_DIR"))
        .or_else(|| default_state_dir(&from_env))
        .unwrap_or_else(|| PathBuf::from(".wsusfix"))
}

fn default_state_dir(env: &dyn Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
    if cfg!(windows) {
        return env("LOCALAPPDATA")
            .filter(|d| d.is_absolute())
            .or_else(|| env("USERPROFILE").map(|h| h.join("AppData").join("Local")))
            .map(|d| d.join("wsusfix"));
    }
    env("XDG_STATE_HOME")
        .filter(|d| d.is_absolute())
        .or_else(|| env("HOME").map(|h| h.join(".local").join("state")))
        .map(|d| d.join("wsusfix"))
}

/// The inventory's path as the journal records it: absolute, so that a run is picked up from
/// any folder.
pub fn absolute(inventory: &Path) -> PathBuf {
    std::fs::canonicalize(inventory)
        .map(without_verbatim_prefix)
        .unwrap_or_else(|_| {
            std::env::current_dir()
                .map(|d| d.join(inventory))
                .unwrap_or_else(|_| inventory.to_path_buf())
        })
}

/// Windows' canonical paths are verbatim (`\\?\C:\...`, `\\?\UNC\server\share\...`): the
/// plain form is what an admin types and reads, and names the same file.
fn without_verbatim_prefix(p: PathBuf) -> PathBuf {
    let Some(s) = p.to_str() else { return p };
    if let Some(rest) = s.strip_prefix(r"\\?\UNC\") {
        return PathBuf::from(format!(r"\\{rest}"));
    }
    match s.strip_prefix(r"\\?\") {
        Some(rest) if rest.as_bytes().get(1) == Some(&b':') => PathBuf::from(rest),
        _ => p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_listed_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let inv = dir.path().join("lab.yaml");
        std::fs::write(&inv, "x").unwrap();
        let rd = RunDir::new(&dir.path().join("state"), &inv);
        assert!(
            rd.root()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("lab-")
        );
        assert_eq!(rd.latest(), None);
        std::fs::create_dir_all(rd.root().join("runs")).unwrap();
        for id in ["20261124T100000.000Z-00001", "20261124T090000.000Z-00002"] {
            std::fs::write(rd.journal(id), "").unwrap();
        }
        assert_eq!(rd.latest().as_deref(), Some("20261124T100000.000Z-00001"));
        assert!(new_run_id().as_str() > "20200101");
    }

    #[test]
    fn windows_paths_are_recorded_without_their_verbatim_prefix() {
        let plain = |s: &str| without_verbatim_prefix(PathBuf::from(s));
        assert_eq!(
            plain(r"\\?\C:\Users\admin\contoso.yaml"),
            PathBuf::from(r"C:\Users\admin\contoso.yaml")
        );
        assert_eq!(
            plain(r"\\?\UNC\fs01\it\contoso.yaml"),
            PathBuf::from(r"\\fs01\it\contoso.yaml")
        );
        // A verbatim path with no plain form (a volume GUID), and Unix paths, stay as they are.
        for s in [r"\\?\Volume{0b1c}\contoso.yaml", "/home/admin/contoso.yaml"] {
            assert_eq!(plain(s), PathBuf::from(s));
        }
    }

    #[test]
    fn the_default_state_folder_does_not_depend_on_the_current_folder() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| PathBuf::from(v))
            }
        };
        if cfg!(windows) {
            assert_eq!(
                default_state_dir(&env(&[
                    ("LOCALAPPDATA", r"C:\Users\admin\AppData\Local"),
                    ("HOME", r"C:\home"),
                    ("XDG_STATE_HOME", r"C:\xdg"),
                ])),
                Some(PathBuf::from(r"C:\Users\admin\AppData\Local\wsusfix"))
            );
            // Without LOCALAPPDATA (a stripped service environment), the profile's folder.
            assert_eq!(
                default_state_dir(&env(&[("USERPROFILE", r"C:\Users\svc")])),
                Some(PathBuf::from(r"C:\Users\svc\AppData\Local\wsusfix"))
            );
            assert_eq!(default_state_dir(&env(&[("HOME", r"C:\home")])), None);
            return;
        }
        assert_eq!(
            default_state_dir(&env(&[("HOME", "/home/admin")])),
            Some(PathBuf::from("/home/admin/.local/state/wsusfix"))
        );
        assert_eq!(
            default_state_dir(&env(&[
                ("HOME", "/home/admin"),
                ("XDG_STATE_HOME", "/var/st")
            ])),
            Some(PathBuf::from("/var/st/wsusfix"))
        );
        // A relative XDG_STATE_HOME is invalid by the spec and ignored.
        assert_eq!(
            default_state_dir(&env(&[("HOME", "/h"), ("XDG_STATE_HOME", "rel")])),
            Some(PathBuf::from("/h/.local/state/wsusfix"))
        );
        assert_eq!(default_state_dir(&env(&[])), None);
    }
}
