//! Shutdown: ask every core to stop accepting, drain, then cancel what is left.
//!
//! A request sets one deadline for all cores and wakes each of them. Each core then
//! resolves its [`shutdown_requested`] futures, makes pending and new
//! [`TcpListener::accept`](crate::net::TcpListener::accept) calls fail with [`ShuttingDown`],
//! and keeps running its tasks until they have all finished or the deadline passes; then it
//! drops what is left (cancelling in-flight ops and waiting for the kernel to confirm).
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::inbox::Shared;

#[derive(Default)]
struct State {
    deadline: Option<Instant>,
    cores: Vec<Arc<Shared>>,
}

/// Shared by a runtime's cores and its shutdown handles.
#[derive(Default)]
pub(crate) struct ShutdownState {
    state: Mutex<State>,
}

impl ShutdownState {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, core: &Arc<Shared>) {
        self.lock().cores.push(core.clone());
    }

    pub fn unregister(&self, core: &Arc<Shared>) {
        self.lock().cores.retain(|c| !Arc::ptr_eq(c, core));
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.lock().deadline
    }

    fn request(&self, grace: Duration) {
        let cores = {
            let mut state = self.lock();
            if state.deadline.is_some() {
                return;
            }
            state.deadline = Some(Instant::now() + grace);
            state.cores.clone()
        };
        for core in cores {
            core.notify();
        }
    }
}

/// Asks a runtime's cores to shut down; `Clone + Send + Sync`, usable from any thread.
///
/// ```
/// use std::time::Duration;
/// let rt = corering::Runtime::new().unwrap();
/// let stop = rt.shutdown_handle();
/// let served = rt.block_on(async move {
///     corering::spawn(async move { stop.shutdown(Duration::from_secs(1)) });
///     corering::shutdown_requested().await;
///     "stopped"
/// });
/// assert_eq!(served, "stopped");
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    pub(crate) state: Arc<ShutdownState>,
}

impl ShutdownHandle {
    /// Requests shutdown: cores stop accepting at once and have `grace` to finish their
    /// tasks; whatever is still running then is cancelled. Later calls do nothing.
    pub fn shutdown(&self, grace: Duration) {
        self.state.request(grace);
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.state.deadline().is_some()
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.is_requested())
            .finish()
    }
}
