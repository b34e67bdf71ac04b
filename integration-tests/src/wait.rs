//! Waiting on a condition with a deadline, never a bare sleep.

use std::future::Future;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(50);

/// Polls `check` until it yields `Some`, or fails after `timeout` with the
/// last thing `check` reported.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "condition not met".to_string(),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}
