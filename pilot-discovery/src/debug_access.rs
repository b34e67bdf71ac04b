//! Who may read the debug pages. They reveal every proxy's config and the
//! whole registry, so they answer only callers on the same machine
//! (loopback), unless `--debug-auth` names a file holding a bearer token:
//! then a caller from elsewhere that presents it is let in too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

#[derive(Clone, Default)]
pub struct DebugAccess {
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for DebugAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("DebugAccess")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DebugAccessError {
    #[error("cannot read --debug-auth token file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--debug-auth token file {path} is empty")]
    Empty { path: PathBuf },
}

/// Why a caller was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not on loopback, and no token is configured.
    LoopbackOnly,
    /// Not on loopback, and the request carries no token or the wrong one.
    BadToken,
}

impl DebugAccess {
    /// Debug pages for loopback callers only.
    pub fn loopback_only() -> DebugAccess {
        DebugAccess::default()
    }

    /// Also lets in callers presenting the token in `path` (surrounding
    /// whitespace ignored, as a mounted Secret often ends in a newline).
    pub fn with_token_file(path: &Path) -> Result<DebugAccess, DebugAccessError> {
        let text = std::fs::read_to_string(path).map_err(|source| DebugAccessError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(DebugAccessError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(DebugAccess {
            token: Some(Arc::from(token)),
        })
    }

    pub fn check(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<(), Refusal> {
        if peer.ip().is_loopback() {
            return Ok(());
        }
        let Some(token) = &self.token else {
            return Err(Refusal::LoopbackOnly);
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(p) if same_secret(p.as_bytes(), token.as_bytes()) => Ok(()),
            _ => Err(Refusal::BadToken),
        }
    }
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell a caller how much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware for the debug routes.
pub async fn guard(
    State(access): State<DebugAccess>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match access.check(peer, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(%peer, path = %request.uri().path(), ?refusal, "debug page refused");
            match refusal {
                Refusal::LoopbackOnly => (
                    StatusCode::FORBIDDEN,
                    "debug pages answer only on loopback; start pilot-discovery with --debug-auth to allow a bearer token\n",
                )
                    .into_response(),
                Refusal::BadToken => (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "a valid bearer token is required\n",
                )
                    .into_response(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        h
    }

    #[test]
    fn loopback_always_and_elsewhere_only_with_the_token() {
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let local6: SocketAddr = "[::1]:5000".parse().expect("addr");
        let remote: SocketAddr = "10.1.2.3:5000".parse().expect("addr");
        let none = HeaderMap::new();

        let closed = DebugAccess::loopback_only();
        assert_eq!(closed.check(local, &none), Ok(()));
        assert_eq!(closed.check(local6, &none), Ok(()));
        assert_eq!(closed.check(remote, &none), Err(Refusal::LoopbackOnly));
        assert_eq!(
            closed.check(remote, &bearer("anything")),
            Err(Refusal::LoopbackOnly)
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret\n").expect("write");
        let open = DebugAccess::with_token_file(&file).expect("token");
        assert_eq!(open.check(local, &none), Ok(()));
        assert_eq!(open.check(remote, &bearer("s3cret")), Ok(()));
        assert_eq!(open.check(remote, &none), Err(Refusal::BadToken));
        assert_eq!(open.check(remote, &bearer("s3cre")), Err(Refusal::BadToken));
        assert_eq!(
            open.check(remote, &bearer("s3creT")),
            Err(Refusal::BadToken)
        );
        assert!(!format!("{open:?}").contains("s3cret"));

        std::fs::write(&file, " \n").expect("write");
        assert!(matches!(
            DebugAccess::with_token_file(&file),
            Err(DebugAccessError::Empty { .. })
        ));
        assert!(matches!(
            DebugAccess::with_token_file(&dir.path().join("gone")),
            Err(DebugAccessError::Read { .. })
        ));
    }
}
