//! One shutdown signal for a process: OS signals or a test trigger it, every server and
//! long-lived stream watches it.

use tokio::sync::watch;

/// A cloneable shutdown signal.
#[derive(Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self {
            tx: watch::channel(false).0,
        }
    }

    /// Fires the signal.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// True once fired.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the signal has fired.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }

    /// Fires the signal on SIGTERM or SIGINT (Ctrl-C).
    pub fn trigger_on_os_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            wait_for_os_signal().await;
            tracing::info!("shutdown requested: draining in-flight calls");
            this.trigger();
        });
    }
}

#[cfg(unix)]
async fn wait_for_os_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_os_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
