//! What the server's and the cluster's sections share: a token that callers
//! present, and the PEM files of TLS. Both read and show them alike.

use std::path::PathBuf;

/// A token as configured. An empty one (an unset variable in a deployment
/// template) means none, not a token anyone can send.
pub(super) fn token(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// The `token` and file rows of `section`, the token masked unless
/// `show_secrets`.
pub(super) fn describe(
    section: &str,
    token: Option<&String>,
    files: &[(&str, &Option<PathBuf>)],
    show_secrets: bool,
    rows: &mut Vec<(String, String)>,
) {
    if let Some(token) = token {
        let shown = if show_secrets {
            token.clone()
        } else {
            "***".into()
        };
        rows.push((format!("{section}.token"), shown));
    }
    for (key, path) in files {
        if let Some(path) = path {
            rows.push((format!("{section}.{key}"), path.display().to_string()));
        }
    }
}
