//! Signals: SIGTERM and SIGINT (Ctrl-C) start a clean shutdown; SIGHUP reloads the config file. The handlers are installed
//! before the gateway starts listening, so a signal that arrives the moment the gateway is
//! ready is never met by the default action (which would kill the process uncleanly).

/// Installed SIGTERM and SIGINT handlers.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Shutdown,
    Reload,
}

impl Signals {
    /// Installs the handlers; must run inside the Tokio runtime.
    pub fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// Waits for SIGTERM, SIGINT or SIGHUP.
    pub async fn recv(&mut self) -> Request {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {
                    tracing::info!("received SIGTERM");
                    Request::Shutdown
                }
                _ = self.int.recv() => {
                    tracing::info!("received SIGINT");
                    Request::Shutdown
                }
                _ = self.hup.recv() => {
                    tracing::info!("received SIGHUP: reloading the config file");
                    Request::Reload
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Request::Shutdown
        }
    }
}
