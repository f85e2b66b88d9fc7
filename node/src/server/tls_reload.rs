//! Taking a renewed certificate without a restart: every
//! [`TLS_RELOAD_INTERVAL`] the files of `--tls-dir` are read again if they
//! changed (see [`Tls::reload`]), and a certificate peers would refuse, or
//! one about to expire, is a warning (see [`Tls::warn_if_peers_refuse`]).

use std::sync::Arc;
use std::time::Duration;

use crate::config::NodeConfig;
use crate::membership::Membership;
use crate::periodic::{PeriodicTask, RoundError};
use crate::tls::Tls;

/// How often the files of `--tls-dir` are checked for changes.
pub const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// Reads this node's certificate again when its files change, and warns
/// when peers would refuse it.
pub struct TlsReload {
    tls: Tls,
    membership: Arc<Membership>,
    node_id: String,
    /// The configured address, for a node the ring does not list.
    configured: String,
}

impl TlsReload {
    /// The check of the TLS of the node configured by `config`, if it has
    /// any.
    pub fn for_node(config: &NodeConfig, membership: &Arc<Membership>) -> Option<Self> {
        Some(Self {
            tls: config.tls.clone()?,
            membership: membership.clone(),
            node_id: config.node_id.clone(),
            configured: config.address.clone(),
        })
    }

    /// Warns if peers would refuse this node's certificate at the address
    /// the ring gives this node (else the configured one).
    pub fn warn_if_peers_refuse(&self) {
        let view = self.membership.view();
        let address = view
            .peer(&self.node_id)
            .map_or(self.configured.as_str(), |peer| peer.address.as_str());
        self.tls.warn_if_peers_refuse(address);
    }
}

impl PeriodicTask for TlsReload {
    fn name(&self) -> &'static str {
        "TLS certificate"
    }

    fn interval(&self) -> Duration {
        TLS_RELOAD_INTERVAL
    }

    async fn round(&self) -> Result<(), RoundError> {
        let reloaded = self.tls.reload();
        if let Ok(true) = reloaded {
            let not_after = self.tls.not_after().map_or_else(
                || "unknown".to_string(),
                |time| humantime::format_rfc3339_seconds(time).to_string(),
            );
            tracing::info!(
                tls_dir = %self.tls.dir().display(),
                %not_after,
                "TLS certificate reloaded"
            );
        }
        self.warn_if_peers_refuse();
        reloaded.map(drop).map_err(|error| {
            RoundError::local("reloading the TLS certificate", format!("{error:#}"))
        })
    }
}
