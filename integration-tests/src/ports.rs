//! Free loopback ports for test processes.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

use anyhow::Context;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A port nothing listens on now and that this process has not handed out
/// before, so concurrent tests never collide with each other.
pub fn free_port() -> anyhow::Result<u16> {
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .context("cannot bind an ephemeral port")?
            .local_addr()?
            .port();
        let mut seen = HANDED_OUT
            .lock()
            .map_err(|_| anyhow::anyhow!("port registry poisoned"))?;
        if seen.insert(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no free port found")
}

/// Fails with a clear message if `port` is taken on loopback.
pub fn ensure_free(port: u16, what: &str) -> anyhow::Result<()> {
    TcpListener::bind(("127.0.0.1", port))
        .map(drop)
        .with_context(|| format!("port {port} ({what}) is already in use on 127.0.0.1"))
}
