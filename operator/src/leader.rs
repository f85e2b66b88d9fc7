//! Leader election on a `coordination.k8s.io/v1` Lease, so several operator
//! replicas can run and only one reconciles.
//!
//! A replica takes the Lease when it is absent, expired or already its own,
//! and renews it every third of its duration. Every write carries the
//! `resourceVersion` that was read, so two replicas racing for an expired
//! Lease cannot both win: the loser gets a 409 and stays a follower. A
//! leader that cannot renew stops (the process exits and restarts as a
//! follower) rather than risk two leaders.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

/// What to do with the Lease as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Nobody holds it (absent or expired): take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it and it is fresh.
    Follow {
        /// Current holder.
        holder: String,
    },
}

/// Decides from the Lease as read (or its absence) at `now`.
pub fn decide(lease: Option<&Lease>, identity: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return LeaseDecision::Acquire;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        return LeaseDecision::Renew;
    }
    let expired = match (spec.renew_time.as_ref(), spec.lease_duration_seconds) {
        (Some(renewed), Some(seconds)) => {
            renewed.0 + SignedDuration::from_secs(i64::from(seconds)) < now
        }
        _ => true,
    };
    if holder.is_empty() || expired {
        LeaseDecision::Acquire
    } else {
        LeaseDecision::Follow { holder }
    }
}

/// One replica's view of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaderElector {
    /// An elector for Lease `name` in `namespace`, held for `duration`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
        }
    }

    /// How often to call [`LeaderElector::try_lead`].
    pub fn renew_interval(&self) -> Duration {
        self.duration / 3
    }

    /// Takes or renews the Lease; `Ok(true)` when this replica leads.
    pub async fn try_lead(&self) -> Result<bool, kube::Error> {
        let current = self.api.get_opt(&self.name).await?;
        let now = Timestamp::now();
        let decision = decide(current.as_ref(), &self.identity, now);
        let seconds = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        if let LeaseDecision::Follow { holder } = &decision {
            tracing::debug!(%holder, "following");
            return Ok(false);
        }
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == LeaseDecision::Acquire {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    tracing::info!(identity = %self.identity, "taking the lease");
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(seconds);
                // `lease.metadata.resourceVersion` is the one read: a
                // concurrent writer makes this replace fail with 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Gives the Lease up if this replica holds it (holder cleared), so a
    /// successor takes over at once instead of after the lease duration;
    /// called on a clean shutdown. A Lease someone else took is left alone.
    pub async fn release(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(false);
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Waits until this replica leads.
    pub async fn acquire(&self) {
        loop {
            match self.try_lead().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "lease not readable"),
            }
            tokio::time::sleep(self.renew_interval()).await;
        }
    }

    /// Renews the Lease until a renewal is refused or none succeeded for a
    /// whole lease duration; returns then (leadership is lost).
    pub async fn keep(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew_interval()).await;
            match self.try_lead().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!("lease taken by another replica");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "lease renewal failed");
                    if last_renewal.elapsed() >= self.duration {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_at: i64, seconds: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed_at).expect("time"))),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("time")
    }

    #[test]
    fn an_absent_lease_is_acquired() {
        assert_eq!(decide(None, "me", at(0)), LeaseDecision::Acquire);
    }

    #[test]
    fn our_own_lease_is_renewed() {
        assert_eq!(
            decide(Some(&lease("me", 0, 15)), "me", at(100)),
            LeaseDecision::Renew
        );
    }

    #[test]
    fn a_fresh_foreign_lease_is_respected_and_an_expired_one_taken() {
        let other = lease("other", 100, 15);
        assert_eq!(
            decide(Some(&other), "me", at(110)),
            LeaseDecision::Follow {
                holder: "other".into()
            }
        );
        assert_eq!(decide(Some(&other), "me", at(116)), LeaseDecision::Acquire);
    }
}
