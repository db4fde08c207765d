//! What the read-only commands that reach hosts share (`plan --facts`, `verify`, `discover`):
//! resolving every password reference before anything connects, and the async runtime.

use std::io::Write;
use std::path::Path;

use crate::exec::connect::Target;
use crate::exit;
use crate::util::credentials::Resolver;

/// Resolves the password reference of every target once, so that a missing one is an input
/// error (exit 3) before any host is asked.
pub fn check_credentials<'a>(
    targets: impl IntoIterator<Item = &'a Target>,
    resolver: &Resolver,
    err: &mut dyn Write,
) -> Result<(), i32> {
    let mut bad = 0;
    let mut seen = std::collections::HashSet::new();
    for t in targets {
        let key = (
            t.credentials.username.clone(),
            t.credentials.password.to_string(),
        );
        if !seen.insert(key) {
            continue;
        }
        if let Err(e) = resolver.resolve(&t.credentials.password, &t.credentials.username) {
            let _ = writeln!(err, "error: {e}");
            bad += 1;
        }
    }
    if bad > 0 { Err(exit::INVALID) } else { Ok(()) }
}

/// The runtime the command's I/O runs on.
pub fn runtime(err: &mut dyn Write) -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            let _ = writeln!(err, "error: cannot start the runtime: {e}");
            exit::ERROR
        })
}

/// The folder relative `file:` references and CA files are read from: the inventory's.
pub fn base_dir(file: &Path) -> &Path {
    file.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
