//! A background writer recording every acknowledged write.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A background client writing fresh keys `<prefix>-<n>`, round robin
/// through its targets, every 5 ms until stopped, recording every
/// acknowledged (2xx) write.
pub struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    attempts: Arc<AtomicUsize>,
    /// (key, value) of every acknowledged write so far.
    pub acked: Arc<Mutex<Vec<(String, String)>>>,
    /// Base URLs of the nodes it writes through (changeable while it runs).
    pub targets: Arc<Mutex<Vec<String>>>,
}

impl Writer {
    /// Starts writing through the nodes at `targets` (base URLs).
    pub fn start(http: reqwest::Client, prefix: &str, targets: Vec<String>) -> Writer {
        Writer::start_shared(http, prefix, Arc::new(Mutex::new(targets)))
    }

    /// Starts writing through the nodes at `targets` (base URLs), a list
    /// the caller keeps and changes as nodes come and go.
    pub fn start_shared(
        http: reqwest::Client,
        prefix: &str,
        targets: Arc<Mutex<Vec<String>>>,
    ) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let attempts = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (stop, acked, targets, attempts) = (
                stop.clone(),
                acked.clone(),
                targets.clone(),
                attempts.clone(),
            );
            let prefix = prefix.to_string();
            async move {
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let url = {
                        let targets = targets.lock().expect("targets");
                        targets[n % targets.len()].clone()
                    };
                    let key = format!("{prefix}-{n}");
                    let value = format!("value-of-{key}");
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let sent = http
                        .put(format!("{url}/v1/kv/{key}"))
                        .body(value.clone())
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        acked.lock().expect("acked").push((key, value));
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        Writer {
            stop,
            task,
            attempts,
            acked,
            targets,
        }
    }

    /// Stops writing; logs how many writes were acknowledged of how many
    /// attempted and returns every acknowledged (key, value).
    pub async fn stop(self) -> Vec<(String, String)> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("writer task");
        let acked = self.acked.lock().expect("acked").clone();
        let attempts = self.attempts.load(Ordering::SeqCst);
        eprintln!("writer: {} of {attempts} writes acknowledged", acked.len());
        acked
    }
}
