//! Secret values in the configuration: inline, `env:NAME` or `file:PATH`.

use secrecy::SecretString;

/// Resolves `spec`; `owner` names what it belongs to in a problem (`` source `prod` ``).
pub(super) fn resolve(owner: &str, spec: &str, problems: &mut Vec<String>) -> Option<SecretString> {
    let value = if let Some(var) = spec.strip_prefix("env:") {
        match std::env::var(var) {
            Ok(value) => value,
            Err(_) => {
                problems.push(format!("{owner}: environment variable `{var}` is not set"));
                return None;
            }
        }
    } else if let Some(path) = spec.strip_prefix("file:") {
        // A trailing newline is what editors and `echo` leave, never part of the secret.
        match std::fs::read_to_string(path) {
            Ok(text) => text.trim_end_matches(['\n', '\r']).to_owned(),
            Err(err) => {
                problems.push(format!("{owner}: cannot read secret file `{path}`: {err}"));
                return None;
            }
        }
    } else {
        spec.to_owned()
    };
    if value.is_empty() {
        problems.push(format!("{owner}: a secret is empty"));
        return None;
    }
    Some(SecretString::from(value))
}
