//! Liveness probes: every peer is pinged each [`PROBE_INTERVAL`], and the
//! outcome feeds the failure detector (see [`crate::membership`]), so a
//! peer that stopped answering is noticed even when no request goes to it.

use std::sync::Arc;
use std::time::Duration;

use crate::membership::Membership;
use crate::periodic::{PeriodicTask, RoundError};
use crate::transport::{Dialing, Request, Transport};

/// How often each peer is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Probes peers over a transport of its own, with a short timeout so that
/// a paused peer is noticed quickly.
pub struct Prober {
    membership: Arc<Membership>,
    transport: Transport,
}

impl Prober {
    /// Probes of `membership`'s peers, dialed as `dialing` says but timing
    /// out within half a probe interval.
    pub fn new(membership: Arc<Membership>, dialing: Dialing) -> Self {
        let transport = Transport::dialing(Dialing {
            timeout: dialing.timeout.min(PROBE_INTERVAL / 2),
            ..dialing
        });
        Self {
            membership,
            transport,
        }
    }
}

impl PeriodicTask for Prober {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn interval(&self) -> Duration {
        PROBE_INTERVAL
    }

    /// Pings every other member at once and records each outcome.
    async fn round(&self) -> Result<(), RoundError> {
        let view = self.membership.view();
        let others = view.all().filter(|p| p.member.id != self.membership.me());
        let probes = others.map(|peer| async move {
            match self.transport.call(peer, &Request::Ping).await {
                Ok(_) => self.membership.liveness().record_success(&peer.member.id),
                Err(_) => self.membership.liveness().record_failure(&peer.member.id),
            }
        });
        futures::future::join_all(probes).await;
        Ok(())
    }
}
