//! Cross-core communication.
//!
//! [`channel`] (bounded) and [`unbounded`] are many-producer, single-consumer queues whose
//! senders may live on any core or thread. A receiver parked on its core is woken through that
//! core's inbox and eventfd, so an idle core sleeps in the kernel until a message arrives.
//!
//! ```
//! use corering::sync::unbounded;
//! let rt = corering::Builder::new().cores(2).pin_cores(false).build().unwrap();
//! let (tx, rx) = unbounded::<usize>();
//! let rx = std::sync::Mutex::new(Some(rx));
//! let reports = rt
//!     .run(|core| {
//!         let tx = tx.clone();
//!         let rx = if core == 0 { rx.lock().unwrap().take() } else { None };
//!         async move {
//!             tx.send(core).await.unwrap();
//!             drop(tx);
//!             match rx {
//!                 Some(mut rx) => (rx.recv().await.unwrap(), rx.recv().await.unwrap()),
//!                 None => (0, 0),
//!             }
//!         }
//!     })
//!     .unwrap();
//! let (a, b) = reports[0].output.as_ref().unwrap();
//! assert_eq!(a + b, 1);
//! ```
mod channel;

pub use channel::{channel, unbounded, Receiver, SendError, Sender, TryRecvError, TrySendError};
