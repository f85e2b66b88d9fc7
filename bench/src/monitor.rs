//! Resource use of processes over the measured phase, sampled from /proc:
//! resident memory (`VmRSS` in `/proc/PID/status`, maximum and last sample)
//! and CPU time (`utime + stime` in `/proc/PID/stat`) as a percentage of one
//! core.

use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often resident memory is sampled.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A process to watch.
#[derive(Debug, Clone)]
pub struct Watched {
    pid: u32,
    name: String,
}

impl Watched {
    /// Watches `pid` and calls it `name` in the report.
    pub fn new(pid: u32, name: impl Into<String>) -> Self {
        Self {
            pid,
            name: name.into(),
        }
    }

    /// Watches `pid`, named after its `/proc/PID/comm`; fails if there is no such process.
    pub fn existing(pid: u32) -> anyhow::Result<Self> {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .with_context(|| format!("--monitor-pid {pid}: no such process"))?;
        Ok(Self::new(pid, comm.trim()))
    }
}

/// Resource use of one process over the measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUsage {
    /// Process id.
    pub pid: u32,
    /// Name it is reported under.
    pub name: String,
    /// CPU time over wall time, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Largest resident set size sampled, MiB.
    pub rss_max_mib: Option<f64>,
    /// Resident set size at the end, MiB.
    pub rss_end_mib: Option<f64>,
    /// Why a value is missing, e.g. the process exited.
    pub note: Option<String>,
}

/// `utime + stime` in clock ticks from the contents of `/proc/PID/stat`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain spaces
    // or parentheses itself, so count fields after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')' come field 3 (state) onwards; utime and stime are 14 and 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in KiB from the contents of `/proc/PID/status`.
pub fn parse_status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn read_cpu_ticks(pid: u32) -> Option<u64> {
    parse_stat_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn read_rss_kib(pid: u32) -> Option<u64> {
    parse_status_rss_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

#[allow(unsafe_code)]
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// What is known about one process during the measured phase.
struct Track {
    watched: Watched,
    cpu_start: Option<u64>,
    rss_max_kib: Option<u64>,
    rss_last_kib: Option<u64>,
    gone: bool,
}

impl Track {
    fn begin(watched: Watched) -> Self {
        let mut track = Self {
            cpu_start: read_cpu_ticks(watched.pid),
            watched,
            rss_max_kib: None,
            rss_last_kib: None,
            gone: false,
        };
        track.sample_rss();
        track
    }

    fn sample_rss(&mut self) {
        match read_rss_kib(self.watched.pid) {
            Some(kib) => {
                self.rss_last_kib = Some(kib);
                self.rss_max_kib = Some(self.rss_max_kib.map_or(kib, |m| m.max(kib)));
            }
            None => self.gone = true,
        }
    }

    fn end(mut self, wall: Duration, ticks_per_second: f64) -> ProcessUsage {
        self.sample_rss();
        let cpu_end = read_cpu_ticks(self.watched.pid);
        let cpu_percent = match (self.cpu_start, cpu_end) {
            (Some(start), Some(end)) if !wall.is_zero() && !self.gone => Some(
                end.saturating_sub(start) as f64 / ticks_per_second / wall.as_secs_f64() * 100.0,
            ),
            _ => None,
        };
        let mib = |kib: u64| kib as f64 / 1024.0;
        ProcessUsage {
            pid: self.watched.pid,
            name: self.watched.name,
            cpu_percent,
            rss_max_mib: self.rss_max_kib.map(mib),
            rss_end_mib: if self.gone {
                None
            } else {
                self.rss_last_kib.map(mib)
            },
            note: self
                .gone
                .then(|| "exited or unreadable during the run".to_owned()),
        }
    }
}

/// Background sampling of a set of processes.
pub struct Monitor {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<ProcessUsage>>,
}

impl Monitor {
    /// Starts watching `processes` from `from` (the start of the measured phase).
    pub fn start(processes: Vec<Watched>, from: Instant) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let ticks_per_second = clock_ticks_per_second();
            let early = tokio::select! {
                _ = &mut stopped => true,
                () = tokio::time::sleep_until(from) => false,
            };
            let began = Instant::now();
            let mut tracks: Vec<Track> = processes.into_iter().map(Track::begin).collect();
            if !early {
                let mut tick = tokio::time::interval(RSS_SAMPLE_EVERY);
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tick.tick() => tracks.iter_mut().for_each(Track::sample_rss),
                    }
                }
            }
            let wall = began.elapsed();
            tracks
                .into_iter()
                .map(|t| t.end(wall, ticks_per_second))
                .collect()
        });
        Self { stop, task }
    }

    /// Stops sampling and returns what was seen over the measured phase.
    pub async fn finish(self) -> Vec<ProcessUsage> {
        // The task may have ended already; then there is no one to tell.
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_ticks_skip_a_command_name_with_spaces_and_parens() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    150 25 0 0 20 0 4 0 12345 1000000 300 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(175));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_rss_is_read_in_kib() {
        let status = "Name:\tdynamo-node\nVmPeak:\t  500000 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n";
        assert_eq!(parse_status_rss_kib(status), Some(20480));
        assert_eq!(parse_status_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let pid = std::process::id();
        assert!(read_cpu_ticks(pid).is_some());
        assert!(read_rss_kib(pid).unwrap() > 0);
        assert!(Watched::existing(pid).is_ok());
        assert!(Watched::existing(u32::MAX).is_err());
    }

    #[tokio::test]
    async fn monitor_reports_this_process() {
        let pid = std::process::id();
        let monitor = Monitor::start(vec![Watched::new(pid, "self")], Instant::now());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let usage = monitor.finish().await;
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].pid, pid);
        assert!(usage[0].cpu_percent.is_some());
        assert!(usage[0].rss_max_mib.unwrap() > 0.0);
        assert!(usage[0].note.is_none());
    }
}
