//! Turning the inventory's password references (`env:VAR`, `file:PATH`, `prompt`) into secrets.
//! Each reference is resolved once per process; errors name the reference, never a value.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_and_prompt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw.txt"), "from-file\nignored\n").unwrap();
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
}
