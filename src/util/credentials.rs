//! Turning the inventory's password references (`env:VAR`, `file:PATH`, `prompt`) into secrets.
//! Each reference is resolved once per process; errors name the reference, never a value.
//!
//! A password file that its group or other users may read or write is refused, as ssh refuses
//! such a private key: fix its mode (`chmod 600`), or opt in with
//! `WSUSFIX_ALLOW_OPEN_PASSWORD_FILES=1`. Pipes and devices (`file:/dev/fd/3`) are not checked.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use crate::core::inventory::SecretRef;
use crate::util::secret::Secret;

/// Asks for a password on the terminal (replaceable in tests).
pub type Prompter = dyn Fn(&str) -> Result<String, String> + Send + Sync;

/// Resolves password references, caching each one.
pub struct Resolver {
    base_dir: std::path::PathBuf,
    cache: Mutex<HashMap<String, Secret>>,
    prompter: Box<Prompter>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

/// Prompts on the terminal without echo; refuses when there is no terminal.
pub fn terminal_prompt(label: &str) -> Result<String, String> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "{label} is `prompt` but there is no terminal to ask on; use env:VAR or file:PATH"
        ));
    }
    rpassword::prompt_password(format!("{label}: "))
        .map_err(|e| format!("cannot read {label}: {e}"))
}

impl Resolver {
    /// A resolver for references of an inventory in `base_dir` (for relative `file:` paths).
    pub fn new(base_dir: &Path) -> Resolver {
        Resolver::with_prompter(base_dir, Box::new(terminal_prompt))
    }

    /// A resolver with another way of prompting.
    pub fn with_prompter(base_dir: &Path, prompter: Box<Prompter>) -> Resolver {
        Resolver {
            base_dir: base_dir.to_path_buf(),
            cache: Mutex::new(HashMap::new()),
            prompter,
        }
    }

    /// The secret a reference names, for `username` (used in the prompt).
    pub fn resolve(&self, r: &SecretRef, username: &str) -> Result<Secret, String> {
        let key = match r {
            SecretRef::Prompt => format!("prompt:{username}"),
            other => other.to_string(),
        };
        if let Some(s) = self
            .cache
            .lock()
            .map_err(|_| "credential cache poisoned")?
            .get(&key)
        {
            return Ok(s.clone());
        }
        let value = match r {
            SecretRef::Env(var) => std::env::var(var).map_err(|_| {
                format!("the inventory's password reference env:{var} names an environment variable that is not set")
            })?,
            SecretRef::File(p) => {
                let path = self.base_dir.join(p);
                check_file_mode(&path, p)?;
                read_password_file(&path)
                    .map_err(|e| format!("cannot read the password file {} (file:{p}): {e}", path.display()))?
            }
            SecretRef::Prompt => (self.prompter)(&format!("password for {username}"))?,
        };
        if value.is_empty() {
            return Err(format!("the password from {r} is empty"));
        }
        let secret = Secret::new(value);
        self.cache
            .lock()
            .map_err(|_| "credential cache poisoned")?
            .insert(key, secret.clone());
        Ok(secret)
    }
}

/// The most a password file may hold: a password, not a disk image (`file:/dev/zero`).
pub const MAX_PASSWORD_FILE: u64 = 64 * 1024;

/// The first line of a password file, read up to [`MAX_PASSWORD_FILE`] bytes.
fn read_password_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    f.take(MAX_PASSWORD_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PASSWORD_FILE {
        return Err(format!(
            "it holds more than {} KiB, which is no password file",
            MAX_PASSWORD_FILE / 1024
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())?;
    let first = text.lines().next().unwrap_or("");
    if first.contains('\0') {
        return Err("its first line holds NUL characters".into());
    }
    Ok(first.to_string())
}

/// Opts in to password files that others may read.
pub const ALLOW_OPEN_FILES_VAR: &str = "WSUSFIX_ALLOW_OPEN_PASSWORD_FILES";

#[cfg(unix)]
fn open_files_allowed() -> bool {
    std::env::var_os(ALLOW_OPEN_FILES_VAR).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Refuses a regular password file whose mode lets group or others read or write it.
#[cfg(unix)]
fn check_file_mode(path: &Path, reference: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(()); // reading it says what is wrong
    };
    let mode = meta.permissions().mode() & 0o777;
    if !meta.is_file() || mode & 0o077 == 0 || open_files_allowed() {
        return Ok(());
    }
    Err(format!(
        "the password file {} (file:{reference}) has mode {mode:04o}: its group or other users may \
         read it; make it private with `chmod 600 {}`, or set {ALLOW_OPEN_FILES_VAR}=1 to use it anyway",
        path.display(),
        path.display()
    ))
}

#[cfg(not(unix))]
fn check_file_mode(_path: &Path, _reference: &str) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_and_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw.txt");
        std::fs::write(&pw, "from-file\nignored\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let r = Resolver::with_prompter(dir.path(), Box::new(|_| Ok("typed".into())));
        assert_eq!(
            r.resolve(&SecretRef::File("pw.txt".into()), "u")
                .unwrap()
                .expose(),
            "from-file"
        );
        assert_eq!(
            r.resolve(&SecretRef::Prompt, "u").unwrap().expose(),
            "typed"
        );
        let e = r
            .resolve(&SecretRef::Env("WSUSFIX_TEST_SURELY_UNSET_VAR".into()), "u")
            .unwrap_err();
        assert!(e.contains("env:WSUSFIX_TEST_SURELY_UNSET_VAR"));
        let e = r
            .resolve(&SecretRef::File("missing.txt".into()), "u")
            .unwrap_err();
        assert!(e.contains("file:missing.txt"));
        #[cfg(target_os = "linux")]
        {
            let e = r
                .resolve(&SecretRef::File("/dev/zero".into()), "u")
                .unwrap_err();
            assert!(e.contains("more than 64 KiB"), "{e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_password_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("open.txt");
        std::fs::write(&pw, "s3cret-in-the-open\n").unwrap();
        let r = Resolver::with_prompter(dir.path(), Box::new(|_| Err("no".into())));
        for mode in [0o666, 0o644, 0o640, 0o620] {
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = r
                .resolve(&SecretRef::File("open.txt".into()), "u")
                .unwrap_err();
            assert!(e.contains(&format!("has mode {mode:04o}")), "{e}");
            assert!(
                e.contains("chmod 600") && e.contains(ALLOW_OPEN_FILES_VAR),
                "{e}"
            );
            assert!(!e.contains("s3cret"), "{e}");
        }
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(
            r.resolve(&SecretRef::File("open.txt".into()), "u")
                .unwrap()
                .expose(),
            "s3cret-in-the-open"
        );
    }
}
