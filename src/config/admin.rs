//! `[admin]`: the inspector's listener, apart from the webhook port because it shows the
//! personal data requests carry.

use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::secret;

/// `[admin]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAdmin {
    /// Off when absent.
    pub listen: Option<String>,
    /// Required unless `listen` is a loopback address; inline, `env:NAME` or `file:PATH`.
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// `Authorization: Bearer <token>` for every API call; `None` only on loopback.
    pub token: Option<SecretString>,
}

/// A token shorter than this could be guessed; `openssl rand -hex 32` makes a good one.
const MIN_TOKEN_CHARS: usize = 16;

/// The admin listener, if `[admin] listen` is set; problems and warnings are collected.
pub(super) fn resolve(
    raw: &RawAdmin,
    server_listen: SocketAddr,
    tls: bool,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<AdminConfig> {
    let Some(listen) = raw.listen.as_deref() else {
        if raw.token.is_some() {
            problems.push(
                "`admin.token` is set but `admin.listen` is not: the inspector is off (set \
                 `listen = \"127.0.0.1:8081\"` to turn it on)"
                    .to_owned(),
            );
        }
        return None;
    };
    let Ok(listen) = listen.parse::<SocketAddr>() else {
        problems.push(format!(
            "`admin.listen` = `{listen}` is not an address such as `127.0.0.1:8081`"
        ));
        return None;
    };
    if listen == server_listen && listen.port() != 0 {
        problems.push(format!(
            "`admin.listen` = `{listen}` is the webhook port: the inspector needs a port of its \
             own, such as `127.0.0.1:8081`"
        ));
    }
    let token =
        raw.token.as_deref().and_then(|spec| secret::resolve("`admin.token`", spec, problems));
    if let Some(token) = &token {
        let token = token.expose_secret();
        // A browser sends only visible ASCII in a header, without spaces at either end.
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(
                "`admin.token` must be visible ASCII characters without spaces (make one with \
                 `openssl rand -hex 32`)"
                    .to_owned(),
            );
        } else if token.len() < MIN_TOKEN_CHARS {
            problems.push(format!(
                "`admin.token` must be at least {MIN_TOKEN_CHARS} characters (make one with \
                 `openssl rand -hex 32`)"
            ));
        }
    }
    let loopback = listen.ip().is_loopback();
    if !loopback && raw.token.is_none() {
        problems.push(format!(
            "`admin.token` is required with `admin.listen` = `{listen}`, which is not a loopback \
             address: the inspector shows the personal data of every request (set `token = \
             \"env:HOOKHOUSE_ADMIN_TOKEN\"`, or listen on `127.0.0.1`)"
        ));
    }
    if !loopback && !tls {
        warnings.push(format!(
            "the inspector on `{listen}` is plain HTTP: its token and the personal data it shows \
             cross the network in clear; set `[server.tls]` (the admin port serves the same \
             certificate) or keep it on `127.0.0.1` behind an SSH tunnel"
        ));
    }
    Some(AdminConfig { listen, token })
}
