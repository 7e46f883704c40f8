//! Supervision support for agents.
//!
//! Agents are actix actors; their actor threads must stay responsive (mailbox,
//! heartbeats), so heavy data work runs on a separate tokio multi-thread runtime,
//! the [`WorkPool`]. A panic inside that work is caught at the join and turned
//! into a [`Crash`], which the agent answers by stopping itself: its actix
//! `Supervisor` restarts it, it registers again, and its task goes back to the
//! scheduler. A task that crashes its agent on every attempt uses up its
//! attempts and halts the migration, so restarts cannot loop forever.

use std::future::Future;

/// Work that panicked instead of returning.
#[derive(Debug, Clone, thiserror::Error)]
#[error("agent work crashed: {message}")]
pub struct Crash {
    /// The panic message, when it was a string.
    pub message: String,
}

/// The multi-thread tokio runtime where agents run heavy work.
#[derive(Clone, Debug)]
pub struct WorkPool {
    handle: tokio::runtime::Handle,
}

impl WorkPool {
    /// Wraps a runtime handle.
    pub fn new(handle: tokio::runtime::Handle) -> Self {
        WorkPool { handle }
    }

    /// The runtime handle.
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `fut` on the pool; a panic comes back as [`Crash`] instead of
    /// unwinding through the caller's actor thread.
    pub async fn run<F, T>(&self, fut: F) -> Result<T, Crash>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        match self.handle.spawn(fut).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic".to_string());
                Err(Crash { message })
            }
            Err(e) => Err(Crash {
                message: format!("work cancelled: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn panic_becomes_crash() {
        let pool = WorkPool::new(tokio::runtime::Handle::current());
        assert_eq!(pool.run(async { 7 }).await.unwrap(), 7);
        let crash = pool
            .run(async {
                if true {
                    panic!("boom in partition 3");
                }
                1
            })
            .await
            .unwrap_err();
        assert!(crash.message.contains("boom in partition 3"));
    }
}
