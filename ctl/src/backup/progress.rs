//! Printing a long backup, verify or restore's progress to stderr every
//! few seconds: records and bytes, of about how many, rates and ETA (JSON
//! lines with `-o json`).

use std::sync::Arc;
use std::time::Duration;

use dynamo_backup::driver::progress::Progress;

use crate::output::Format;

/// How often progress is printed.
const EVERY: Duration = Duration::from_secs(2);

/// Prints progress while it lives.
pub struct Printer(tokio::task::JoinHandle<()>);

impl Printer {
    /// Prints `progress` of `what` every [`EVERY`] until dropped.
    pub fn start(what: &'static str, progress: Arc<Progress>, format: Format) -> Self {
        Printer(tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("{}", line(what, &progress, format));
            }
        }))
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn line(what: &str, progress: &Progress, format: Format) -> String {
    let r = progress.report();
    match format {
        Format::Json => {
            let mut json = serde_json::to_value(&r).unwrap_or_default();
            json["progress"] = what.into();
            json.to_string()
        }
        Format::Text => format!(
            "{what}: {} records{}, {:.1} MiB, {:.0} records/s, {:.1} MiB/s{}",
            r.records,
            match r.expected_records {
                0 => String::new(),
                n => format!(" of about {n}"),
            },
            r.bytes as f64 / 1048576.0,
            r.records_per_sec,
            r.bytes_per_sec / 1048576.0,
            r.eta_secs
                .map(|s| format!(", about {s} s left"))
                .unwrap_or_default(),
        ),
    }
}
