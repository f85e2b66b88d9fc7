//! The read path: ask R replicas (all N on a share of reads), this node
//! first, then those expected to answer soonest; ask one more when they
//! are slow to answer (a hedge, after a delay derived from recent
//! latencies) or fail, the fallbacks for owners believed down last;
//! answer after R; repair the stale owners among those that answered.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tracing::Instrument;

use super::{Coordinator, CoordinatorError};
use crate::membership::Replicas;
use crate::peer::Peer;
use crate::transport::QuorumShortfall;
use crate::version::Object;

type ReadResult = (Arc<Peer>, Result<Vec<Option<Object>>, String>);

impl Coordinator {
    /// Reads `key` from `r` replicas and returns the merge of their states
    /// (empty when nobody has it). Owners that turn out stale once all asked
    /// have answered are repaired in the background.
    pub async fn read(&self, key: Bytes, r: usize) -> Result<Object, CoordinatorError> {
        let replicas = self.membership.view().replicas(&key);
        let mut objects = self.read_group(vec![key], &replicas, r).await?;
        Ok(objects.pop().unwrap_or_default())
    }

    /// Reads many keys as [`Coordinator::read`] reads one, with one
    /// request per replica of each set of keys that share their owners, in
    /// whatever preference order (not one per key); the states in the
    /// order of `keys`. Fails when any set misses its quorum.
    pub async fn read_many(
        &self,
        keys: &[Bytes],
        r: usize,
    ) -> Result<Vec<Object>, CoordinatorError> {
        let view = self.membership.view();
        let mut groups: HashMap<Vec<String>, (Replicas, Vec<usize>)> = HashMap::new();
        for (index, key) in keys.iter().enumerate() {
            let replicas = view.replicas(key);
            let mut owners: Vec<String> = replicas
                .owners()
                .iter()
                .map(|p| p.member.id.clone())
                .collect();
            owners.sort_unstable();
            groups
                .entry(owners)
                .or_insert_with(|| (replicas, Vec::new()))
                .1
                .push(index);
        }
        let reads = groups.into_values().map(|(replicas, indices)| async move {
            let group = indices.iter().map(|&i| keys[i].clone()).collect();
            (indices, self.read_group(group, &replicas, r).await)
        });
        let mut out = vec![Object::new(); keys.len()];
        for (indices, objects) in futures::future::join_all(reads).await {
            for (index, object) in indices.into_iter().zip(objects?) {
                out[index] = object;
            }
        }
        Ok(out)
    }

    /// Reads `keys`, which share `replicas`, from `r` of them: every
    /// replica asked answers for all the keys at once.
    async fn read_group(
        &self,
        keys: Vec<Bytes>,
        replicas: &Replicas,
        r: usize,
    ) -> Result<Vec<Object>, CoordinatorError> {
        let keys: Arc<[Bytes]> = keys.into();
        let (mut targets, reserve) = self.sloppy_targets(replicas);
        let mut reserve: VecDeque<Arc<Peer>> = reserve.into();
        // Replicas of the first N usable nodes not asked at first, at the
        // front of `reserve`: the ones a hedge may ask (the fallbacks
        // behind them hold the keys only by chance).
        let mut spares: usize = 0;
        if rand::random::<f64>() >= self.read_repair_chance {
            // Ask R: this node first when it holds the keys (a local read
            // is cheap), then the replicas expected to answer soonest; the
            // rest stand by, in that order.
            targets.sort_by_key(|t| self.answer_order(&t.peer));
            for spare in targets.drain(r.min(targets.len())..).rev() {
                reserve.push_front(spare.peer);
                spares += 1;
            }
        }
        let mut pending: FuturesUnordered<BoxFuture<'static, ReadResult>> = FuturesUnordered::new();
        for target in targets {
            pending.push(self.read_from(target.peer, keys.clone()));
        }

        let mut replies: Vec<(Arc<Peer>, Vec<Object>)> = Vec::with_capacity(replicas.n());
        let mut merged = vec![Object::new(); keys.len()];
        let hedge_delay = self.latencies.hedge_delay();
        let hedge = tokio::time::sleep(hedge_delay);
        tokio::pin!(hedge);
        while replies.len() < r {
            tokio::select! {
                next = pending.next() => {
                    let Some((peer, result)) = next else {
                        break;
                    };
                    match result {
                        Ok(objects) => replies.push((peer, merge_reply(&mut merged, objects))),
                        Err(error) => {
                            tracing::debug!(peer = %peer.member.id, %error, "replica read failed");
                            if let Some(next) = reserve.pop_front() {
                                spares = spares.saturating_sub(1);
                                pending.push(self.read_from(next, keys.clone()));
                            }
                        }
                    }
                }
                () = &mut hedge, if spares > 0 => {
                    // The replicas asked are slow: ask one more, and again
                    // after the same delay while some stand by.
                    let next = reserve.pop_front().expect("spares are in the reserve");
                    spares -= 1;
                    pending.push(self.read_from(next, keys.clone()));
                    self.stats.hedged();
                    hedge.as_mut().reset(tokio::time::Instant::now() + hedge_delay);
                }
            }
        }
        if replies.len() < r {
            return Err(self
                .quorum_failed(QuorumShortfall {
                    op: "read".into(),
                    needed: r,
                    answered: replies.len(),
                    replicas: replicas.n(),
                })
                .into());
        }
        let answer = merged.clone();
        // Most reads ask only R replicas and find them equal: nothing is
        // left to wait for or repair, so no task is spawned.
        if pending.is_empty() && replies.iter().all(|(_, objects)| *objects == merged) {
            return Ok(answer);
        }
        let owners: Vec<String> = replicas
            .owners()
            .iter()
            .map(|p| p.member.id.clone())
            .collect();
        let this = self.clone();
        // In the client request's span, whose trace the repair belongs to.
        let repair = async move {
            while let Some((peer, result)) = pending.next().await {
                if let Ok(objects) = result {
                    replies.push((peer, merge_reply(&mut merged, objects)));
                }
            }
            replies.retain(|(peer, _)| owners.contains(&peer.member.id));
            for (index, (key, merged)) in keys.iter().zip(merged).enumerate() {
                let states = replies
                    .iter()
                    .map(|(peer, objects)| (peer.clone(), objects[index].clone()))
                    .collect();
                this.read_repair(key.clone(), merged, states).await;
            }
        };
        tokio::spawn(repair.in_current_span());
        Ok(answer)
    }

    fn read_from(&self, peer: Arc<Peer>, keys: Arc<[Bytes]>) -> BoxFuture<'static, ReadResult> {
        let this = self.clone();
        Box::pin(async move {
            let result = this.read_replica_keys(&peer, &keys).await;
            (peer, result)
        })
    }

    /// Sends the merged state to every owner whose state differs from it.
    async fn read_repair(&self, key: Bytes, merged: Object, replies: Vec<(Arc<Peer>, Object)>) {
        if merged.is_empty() {
            return;
        }
        for (peer, object) in replies {
            if object == merged {
                continue;
            }
            match self
                .write_replica(&peer, key.clone(), merged.clone(), None)
                .await
            {
                Ok(()) => {
                    let bytes = postcard::experimental::serialized_size(&merged).unwrap_or(0);
                    self.stats.repaired(bytes);
                    tracing::debug!(peer = %peer.member.id, "read repair");
                }
                Err(error) => tracing::debug!(peer = %peer.member.id, %error, "read repair failed"),
            }
        }
    }
}

/// Merges one replica's answer (a state or nothing per key) into `merged`
/// and returns it with nothing as empty states.
fn merge_reply(merged: &mut [Object], objects: Vec<Option<Object>>) -> Vec<Object> {
    let objects: Vec<Object> = objects.into_iter().map(Option::unwrap_or_default).collect();
    for (into, object) in merged.iter_mut().zip(&objects) {
        into.merge(object);
    }
    objects
}
