//! Reading the inventory and playbook files and reporting their diagnostics. The only place
//! where the core's inputs touch the file system.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::core::diag::{self, Diagnostic};
use crate::core::hierarchy::Hierarchy;
use crate::core::inventory::{self, Inventory};
use crate::core::playbook::{self, Playbook};
use crate::exit;

/// Inputs that loaded and validated.
#[derive(Debug)]
pub struct Inputs {
    /// The inventory file as given.
    pub inventory_path: PathBuf,
    /// The validated inventory.
    pub inventory: Inventory,
    /// Its hierarchy.
    pub hierarchy: Hierarchy,
    /// The playbook's display name (file or built in).
    pub playbook_path: String,
    /// The validated playbook.
    pub playbook: Playbook,
    /// Warnings printed while loading.
    pub warnings: usize,
}

/// Reads a text file, or returns a one-line error that names it (with a hint for near-miss names).
pub fn read_text(path: &Path, what: &str) -> Result<String, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let mut msg = format!(
                "cannot read {what} {}: {}",
                path.display(),
                plain_io_error(&e, path)
            );
            if e.kind() == std::io::ErrorKind::NotFound
                && let Some(s) = similar_file(path)
            {
                msg.push_str(&format!("\n  = help: did you mean {}?", s.display()));
            }
            return Err(msg);
        }
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        format!(
            "{what} {} is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

fn plain_io_error(e: &std::io::Error, path: &Path) -> String {
    match e.kind() {
        // Windows refuses to open a folder as a file with "access denied".
        _ if path.is_dir() => "it is a directory".into(),
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "it is a directory".into(),
        _ => e.to_string(),
    }
}

fn similar_file(path: &Path) -> Option<PathBuf> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name()?.to_str()?;
    let entries = std::fs::read_dir(dir).ok()?;
    let names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let best = diag::did_you_mean(name, names.iter().map(String::as_str))?;
    Some(dir.join(best))
}

/// Prints diagnostics for one file to `err`; returns the number of errors.
pub fn report(err: &mut dyn Write, diags: &[Diagnostic], file: &str, text: &str) -> usize {
    if diags.is_empty() {
        return 0;
    }
    let _ = err.write_all(diag::render_all(diags, file, text).as_bytes());
    diags.iter().filter(|d| d.is_error()).count()
}

/// Loads and validates the inventory and the playbook (the built-in one when `playbook` is
/// `None`). Problems of both files are reported before giving up; the error is an exit code.
pub fn load(
    err: &mut dyn Write,
    inventory_file: &Path,
    playbook: Option<&Path>,
) -> Result<Inputs, i32> {
    let inv_text = read_text(inventory_file, "inventory");
    let (pb_name, pb_text) = match playbook {
        Some(p) => (p.display().to_string(), read_text(p, "playbook")),
        None => (
            playbook::DEFAULT_PLAYBOOK_NAME.to_string(),
            Ok(playbook::DEFAULT_PLAYBOOK.to_string()),
        ),
    };
    let mut failed = false;
    let mut warnings = 0;
    let inv = match &inv_text {
        Err(m) => {
            let _ = writeln!(err, "error: {m}");
            failed = true;
            None
        }
        Ok(text) => {
            let loaded = inventory::load(text);
            let file = inventory_file.display().to_string();
            let errors = report(err, &loaded.diagnostics, &file, text);
            warnings += loaded.diagnostics.len() - errors;
            failed |= errors > 0;
            loaded.inventory
        }
    };
    let pb = match &pb_text {
        Err(m) => {
            let _ = writeln!(err, "error: {m}");
            failed = true;
            None
        }
        Ok(text) => {
            let loaded = playbook::load(text);
            let errors = report(err, &loaded.diagnostics, &pb_name, text);
            warnings += loaded.diagnostics.len() - errors;
            failed |= errors > 0;
            loaded.playbook
        }
    };
    match (inv, pb) {
        (Some(inventory), Some(playbook)) if !failed => {
            let hierarchy = Hierarchy::new(&inventory);
            Ok(Inputs {
                inventory_path: inventory_file.to_path_buf(),
                inventory,
                hierarchy,
                playbook_path: pb_name,
                playbook,
                warnings,
            })
        }
        _ => Err(exit::INVALID),
    }
}
