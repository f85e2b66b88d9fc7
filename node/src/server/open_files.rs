//! The open-file limit: its soft value raised to the hard one at start,
//! and the connection caps fitted below it, so that a flood of
//! connections cannot take the descriptors RocksDB and the node's own
//! connections to its peers need.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::config::ConnectionLimits;

/// Share, in percent, of the open-file limit the listeners' connections
/// may take; the rest stays for RocksDB's files, the connections this node
/// opens to its peers, and logs.
const CONNECTION_SHARE_PERCENT: u64 = 75;

/// `limits` fitted to the open-file limit, having raised its soft value to
/// the hard one (logged); unchanged when the limit cannot be read.
pub fn fit_to_open_file_limit(limits: ConnectionLimits) -> ConnectionLimits {
    match raise_soft_limit() {
        Some(open_files) => fit(limits, open_files),
        None => limits,
    }
}

/// Raises the soft open-file limit to the hard one; the soft limit then
/// in force, or `None` if it cannot be read.
fn raise_soft_limit() -> Option<u64> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "reading the open-file limit; connection caps not checked");
            return None;
        }
    };
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            tracing::info!(from = soft, to = hard, "raised the open-file limit");
            Some(hard)
        }
        Err(error) => {
            tracing::warn!(%error, soft, hard, "raising the open-file limit");
            Some(soft)
        }
    }
}

/// `limits` with both connection caps lowered in proportion (each to at
/// least 1) when together they exceed the share of `open_files` the
/// listeners may take.
fn fit(limits: ConnectionLimits, open_files: u64) -> ConnectionLimits {
    let room = usize::try_from(open_files.saturating_mul(CONNECTION_SHARE_PERCENT) / 100)
        .unwrap_or(usize::MAX);
    let total = limits
        .max_client_connections
        .saturating_add(limits.max_peer_connections);
    if total <= room {
        return limits;
    }
    let scaled = |cap: usize| {
        let share = cap as u128 * room as u128 / total as u128;
        usize::try_from(share).unwrap_or(usize::MAX).max(1)
    };
    let fitted = ConnectionLimits {
        max_client_connections: scaled(limits.max_client_connections),
        max_peer_connections: scaled(limits.max_peer_connections),
        ..limits
    };
    tracing::warn!(
        open_files,
        max_client_connections = fitted.max_client_connections,
        max_peer_connections = fitted.max_peer_connections,
        "lowered the connection caps to fit the open-file limit; raise it (ulimit -n) to allow more"
    );
    fitted
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits(clients: usize, peers: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            tls_handshake_timeout: Duration::from_secs(1),
            max_client_connections: clients,
            max_peer_connections: peers,
            max_in_flight_requests: 1,
        }
    }

    #[test]
    fn caps_that_fit_stay_and_others_shrink_in_proportion() {
        assert_eq!(fit(limits(4096, 1024), 1 << 20), limits(4096, 1024));
        let fitted = fit(limits(4096, 1024), 1024);
        assert_eq!(
            (fitted.max_client_connections, fitted.max_peer_connections),
            (614, 153)
        );
        let tiny = fit(limits(4096, 1024), 1);
        assert_eq!(
            (tiny.max_client_connections, tiny.max_peer_connections),
            (1, 1)
        );
    }
}
