//! The listeners' limits: how long a connection may take over each step,
//! how many connections may be open, and how many requests in flight.

use std::time::Duration;

use anyhow::bail;

use super::args::ServeArgs;
use super::{defaults, millis};

/// Timeouts and caps of the HTTP listeners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a whole request head: from the accept for the first
    /// request, from its first byte for later ones.
    pub header_read_timeout: Duration,
    /// Time to send a whole request body, from the end of its head.
    pub body_read_timeout: Duration,
    /// Time a keep-alive connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// Time a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// Open client connections at most.
    pub max_client_connections: usize,
    /// Connections beyond the client ones that only node-to-node streams
    /// may use (on a separate internal listener, its cap).
    pub max_peer_connections: usize,
    /// Client requests in flight at most.
    pub max_in_flight_requests: usize,
}

impl ConnectionLimits {
    /// The limits `args` set, defaults filled in; every cap at least 1.
    pub(super) fn from_args(args: &ServeArgs) -> anyhow::Result<Self> {
        let limits = Self {
            header_read_timeout: millis(
                args.header_read_timeout_ms,
                defaults::HEADER_READ_TIMEOUT_MS,
            ),
            body_read_timeout: millis(args.body_read_timeout_ms, defaults::BODY_READ_TIMEOUT_MS),
            idle_timeout: millis(args.idle_timeout_ms, defaults::IDLE_TIMEOUT_MS),
            tls_handshake_timeout: millis(
                args.tls_handshake_timeout_ms,
                defaults::TLS_HANDSHAKE_TIMEOUT_MS,
            ),
            max_client_connections: args
                .max_client_connections
                .unwrap_or(defaults::MAX_CLIENT_CONNECTIONS),
            max_peer_connections: args
                .max_peer_connections
                .unwrap_or(defaults::MAX_PEER_CONNECTIONS),
            max_in_flight_requests: args
                .max_in_flight_requests
                .unwrap_or(defaults::MAX_IN_FLIGHT_REQUESTS),
        };
        let caps = [
            ("max-client-connections", limits.max_client_connections),
            ("max-peer-connections", limits.max_peer_connections),
            ("max-in-flight-requests", limits.max_in_flight_requests),
        ];
        if let Some((name, _)) = caps.iter().find(|(_, cap)| *cap == 0) {
            bail!("{name} must be at least 1");
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_and_caps_must_be_positive() {
        let limits = ConnectionLimits::from_args(&ServeArgs::default()).unwrap();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.max_client_connections, 4096);
        let zero = ServeArgs {
            max_in_flight_requests: Some(0),
            ..ServeArgs::default()
        };
        let error = ConnectionLimits::from_args(&zero).unwrap_err();
        assert!(
            error.to_string().contains("max-in-flight-requests"),
            "{error}"
        );
    }
}
