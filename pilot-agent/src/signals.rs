//! SIGTERM and SIGINT become termination requests for the supervisor; the
//! second one makes it stop at once.

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::supervisor::Control;

pub async fn forward(to: mpsc::Sender<Control>) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "termination requested");
        if to.send(Control::Terminate).await.is_err() {
            return Ok(());
        }
    }
}
