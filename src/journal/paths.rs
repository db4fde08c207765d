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
        let abs = std::fs::canonicalize(inventory).unwrap_or_else(|_| inventory.to_path_buf());
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

    /// Every run ID, oldest first.
    pub fn runs(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.root.join("runs"))
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".jsonl").map(str::to_string)
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

/// The state folder: `--state-dir`, else `$WSUSFIX_STATE_DIR`, else `.wsusfix` in the current
/// folder.
pub fn state_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("WSUSFIX_STATE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".wsusfix"))
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
}
