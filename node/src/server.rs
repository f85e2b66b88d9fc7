//! `dynamo-node serve`: opens the store, builds the ring, serves the APIs
//! until SIGINT/SIGTERM, then drains and shuts down cleanly.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::antientropy::AntiEntropy;
use crate::api::{self, AppState, BackgroundTasks};
use crate::background::every;
use crate::config::NodeConfig;
use crate::coordinator::Coordinator;
use crate::gossip::Gossip;
use crate::handoff::Handoff;
use crate::membership::Membership;
use crate::replica::ReplicaService;
use crate::storage::{Storage, StorageOptions};
use crate::tombstones::TombstoneGc;
use crate::transfer::Transfers;
use crate::transport::{Dialing, Request, Transport};

/// Longest wait for open TLS connections to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often each peer is probed.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Runs a node until a shutdown signal arrives.
pub async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let initial = config.initial_ring()?;
    let storage_options = StorageOptions {
        fsync: config.fsync,
        block_cache_bytes: config.block_cache_bytes,
        partitions: initial.ring.partitions,
    };
    let storage = Arc::new(
        Storage::open(&config.data_dir, &storage_options)
            .with_context(|| format!("opening RocksDB in {}", config.data_dir.display()))?,
    );
    let persisted = Transfers::persisted_ring(&storage).context("reading the persisted ring")?;
    if let Some(persisted) = &persisted
        && persisted.ring.partitions != initial.ring.partitions
    {
        anyhow::bail!(
            "the data directory holds a ring of {} partitions but the configuration has {}",
            persisted.ring.partitions,
            initial.ring.partitions
        );
    }
    let dialing = config.dialing();
    let membership = Arc::new(Membership::new(
        config.node_id.clone(),
        persisted.clone().unwrap_or_else(|| initial.clone()),
    ));
    let background = &config.background;
    let transfers = Arc::new(
        Transfers::new(
            storage.clone(),
            membership.clone(),
            dialing.clone(),
            background.transfer_keys_per_sec,
        )
        .context("loading the transfer plan")?,
    );
    transfers
        .adopt(initial)
        .context("adopting the configured ring")?;
    transfers.persist_current().context("persisting the ring")?;
    let transport = Arc::new(Transport::dialing(dialing.clone()));
    let coordinator = Coordinator::new(storage.clone(), membership.clone(), transport.clone())
        .with_read_repair_chance(config.read_repair_chance);
    let seeds = config
        .peers
        .iter()
        .filter(|p| p.member.id != config.node_id)
        .cloned()
        .collect();
    let tasks = BackgroundTasks {
        gossip: Arc::new(Gossip::new(membership.clone(), transfers.clone(), seeds)),
        handoff: Arc::new(Handoff::new(
            storage.clone(),
            membership.clone(),
            dialing.clone(),
            background.handoff_keys_per_sec,
        )),
        anti_entropy: Arc::new(AntiEntropy::new(
            storage.clone(),
            membership.clone(),
            transfers.clone(),
            dialing.clone(),
            background.anti_entropy_keys_per_sec,
        )),
        tombstones: Arc::new(TombstoneGc::new(
            storage.clone(),
            membership.clone(),
            transfers.clone(),
            dialing.clone(),
            background.tombstones,
        )),
    };
    let service = Arc::new(ReplicaService::new(
        coordinator.clone(),
        transfers.clone(),
        tasks.gossip.clone(),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(probe_peers(
        membership.clone(),
        dialing.clone(),
        stop_rx.clone(),
    ));
    tokio::spawn(tasks.gossip.clone().run(
        background.gossip_interval,
        dialing.clone(),
        stop_rx.clone(),
    ));
    tokio::spawn(
        tasks
            .handoff
            .clone()
            .run(background.handoff_interval, stop_rx.clone()),
    );
    tokio::spawn(
        tasks
            .anti_entropy
            .clone()
            .run(background.anti_entropy_interval, stop_rx.clone()),
    );
    tokio::spawn(
        tasks
            .tombstones
            .clone()
            .run(background.tombstone_scan_interval, stop_rx.clone()),
    );
    tokio::spawn(transfers.clone().run(stop_rx.clone()));
    let state = Arc::new(AppState::new(coordinator, &config, transfers, tasks));

    let client = api::client_router(state.clone(), config.auth_token.clone());
    let tls = config.tls.as_ref().map(|t| t.acceptor.clone());
    let internal = api::internal_router(service, config.auth_token.clone());
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let mut servers = tokio::task::JoinSet::new();
    match config.internal_listen {
        Some(address) => {
            let internal_listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("binding internal address {address}"))?;
            servers.spawn(run(
                internal_listener,
                internal,
                tls.clone(),
                stop_rx.clone(),
            ));
            servers.spawn(run(listener, client, tls, stop_rx.clone()));
        }
        None => {
            servers.spawn(run(listener, client.merge(internal), tls, stop_rx.clone()));
        }
    }
    tracing::info!(
        node = %config.node_id,
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        actor = storage.actor(),
        epoch = membership.view().epoch(),
        partitions = membership.view().ring().partitions_of(&config.node_id).len(),
        "node serving"
    );

    shutdown_signal().await;
    tracing::info!(node = %config.node_id, "shutting down");
    state.set_not_ready();
    let _ = stop_tx.send(true);
    while let Some(result) = servers.join_next().await {
        result??;
    }
    drop(state);
    tracing::info!(node = %config.node_id, "stopped");
    Ok(())
}

/// Serves `router` until `stop` turns true. Every accepted connection gets
/// TCP_NODELAY: replies are small frames, and Nagle's algorithm combined with
/// the peer's delayed ACKs would hold them for up to 40 ms at low load.
async fn run(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if let Some(tls) = tls {
        return run_tls(listener, router, tls, stop).await;
    }
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "setting TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
        .context("serving HTTP")
}

/// Serves `router` over TLS until `stop` turns true, then lets open
/// connections finish (at most [`DRAIN_TIMEOUT`]).
async fn run_tls(
    listener: TcpListener,
    router: axum::Router,
    tls: TlsAcceptor,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!(%error, "setting TCP_NODELAY");
        }
        let tls = tls.clone();
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tls.accept(tcp).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
            };
            let builder = ConnectionBuilder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout");
    }
    Ok(())
}

/// Pings every peer each [`PROBE_INTERVAL`] over a transport of its own
/// (short timeout, so a paused peer is noticed quickly).
async fn probe_peers(membership: Arc<Membership>, dialing: Dialing, stop: watch::Receiver<bool>) {
    let transport = Transport::dialing(Dialing {
        timeout: dialing.timeout.min(PROBE_INTERVAL / 2),
        ..dialing
    });
    every(PROBE_INTERVAL, stop, || async {
        let view = membership.view();
        let others = view.all().filter(|p| p.member.id != membership.me());
        let probes = others.map(|peer| {
            let transport = &transport;
            let membership = &membership;
            async move {
                match transport.call(peer, &Request::Ping).await {
                    Ok(_) => membership.liveness().record_success(&peer.member.id),
                    Err(_) => membership.liveness().record_failure(&peer.member.id),
                }
            }
        });
        futures::future::join_all(probes).await;
    })
    .await;
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
