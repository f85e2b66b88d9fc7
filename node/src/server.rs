//! `dynamo-node serve`: opens the store, builds the ring, serves the APIs
//! until SIGINT/SIGTERM, then drains and shuts down cleanly.

mod connection;
mod listener;
mod open_files;
mod tls_reload;

use std::sync::Arc;

use anyhow::Context;
use dynamo_ring::RingDocument;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::antientropy::AntiEntropy;
use crate::api::auth::{ClientReload, PeerGuard};
use crate::api::{self, AppState, MaintenanceTasks};
use crate::config::{ClusterState, ConnectionLimits, NodeConfig};
use crate::coordinator::Coordinator;
use crate::gossip::Gossip;
use crate::handoff::Handoff;
use crate::membership::Membership;
use crate::metrics::Metrics;
use crate::periodic;
use crate::probe::Prober;
use crate::ring_adoption::RingAdoption;
use crate::rpc_handler::RpcHandler;
use crate::storage::{Storage, StorageOptions, meta};
use crate::tombstones::TombstoneGc;
use crate::transfer::Transfers;
use crate::transport::{Dialing, Transport};
use listener::{Budget, Listener};
use tls_reload::TlsReload;

/// Runs a node until a shutdown signal arrives.
pub async fn serve(config: NodeConfig) -> anyhow::Result<()> {
    let limits = open_files::fit_to_open_file_limit(config.connections.clone());
    let (storage, start, initial) = open_store(&config)?;
    let dialing = Dialing::for_node(&config);
    let membership = Arc::new(Membership::new(config.node_id.clone(), start));
    let tls_reload = TlsReload::for_node(&config, &membership).map(Arc::new);
    if let Some(tls_reload) = &tls_reload {
        tls_reload.warn_if_peers_refuse();
    }
    let transfers = Arc::new(
        Transfers::new(
            storage.clone(),
            membership.clone(),
            dialing.clone(),
            config.maintenance.transfer_keys_per_sec,
        )
        .context("loading the transfer plan")?,
    );
    rebuild_if_data_lost(&config, &storage, &transfers)?;
    let rings = adopt_configured_ring(&storage, &membership, &transfers, initial)?;
    let transport = Arc::new(Transport::dialing(dialing.clone()));
    let coordinator = Coordinator::new(
        storage.clone(),
        membership.clone(),
        transport,
        config.read_repair_chance,
    );
    let tasks = maintenance_tasks(&config, &storage, &membership, &rings, &transfers, &dialing);
    let metrics = Metrics::default();
    let rpc = Arc::new(RpcHandler::new(
        coordinator.clone(),
        transfers.clone(),
        tasks.gossip.clone(),
        config.request_timeout,
        metrics.clone(),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let prober = Arc::new(Prober::new(membership.clone(), dialing));
    spawn_maintenance(prober, &tasks, &transfers, &stop_rx);
    if let Some(credentials) = &config.credentials {
        periodic::spawn(Arc::new(ClientReload(credentials.clone())), stop_rx.clone());
    }
    if let Some(tls_reload) = tls_reload {
        periodic::spawn(tls_reload, stop_rx.clone());
    }
    let state = Arc::new(AppState::new(
        coordinator,
        &config,
        rings,
        transfers,
        tasks,
        metrics,
    ));
    let mut servers = listen(&config, &limits, state.clone(), rpc, &stop_rx).await?;
    tracing::info!(
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        actor = storage.actor(),
        epoch = membership.view().epoch(),
        partitions = membership.view().ring().partitions_of(&config.node_id).len(),
        "node serving"
    );

    shutdown_signal().await;
    tracing::info!("shutting down");
    state.set_not_ready();
    let _ = stop_tx.send(true);
    while let Some(result) = servers.join_next().await {
        result.context("a listener failed")?;
    }
    drop(state);
    tracing::info!("stopped");
    Ok(())
}

/// Opens the store under the data directory (creating it). Returns it with
/// the ring to start from (the one persisted by an earlier run, else the
/// configured one) and the configured ring.
fn open_store(config: &NodeConfig) -> anyhow::Result<(Arc<Storage>, RingDocument, RingDocument)> {
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
    meta::claim_for(&storage, &config.node_id)
        .with_context(|| format!("data directory {}", config.data_dir.display()))?;
    crate::storage::format::check(&storage, &config.data_dir)?;
    let persisted = RingAdoption::persisted_ring(&storage).context("reading the persisted ring")?;
    if let Some(persisted) = &persisted
        && persisted.ring.partitions != initial.ring.partitions
    {
        anyhow::bail!(
            "the data directory holds a ring of {} partitions but the configuration has {}",
            persisted.ring.partitions,
            initial.ring.partitions
        );
    }
    let start = persisted.unwrap_or_else(|| initial.clone());
    Ok((storage, start, initial))
}

/// On a data directory that has never served, in an existing cluster
/// whose ring lists this node, plans receiving every partition the node
/// owns from the other replicas: its data was lost, and until a partition
/// arrives the node answers reads for it with "not ready" instead of
/// answering as an owner that has nothing.
fn rebuild_if_data_lost(
    config: &NodeConfig,
    storage: &Storage,
    transfers: &Transfers,
) -> anyhow::Result<()> {
    if config.initial_cluster_state == ClusterState::New
        || RingAdoption::has_persisted_ring(storage).context("reading the persisted ring")?
    {
        return Ok(());
    }
    let receiving = transfers
        .plan_rebuild()
        .context("persisting the rebuild plan")?;
    if receiving > 0 {
        tracing::warn!(
            partitions = receiving,
            "the data directory is empty but the ring lists this node: receiving every partition \
             it owns from the other replicas before answering reads for it \
             (--initial-cluster-state=existing; give `new` to the nodes of a cluster being created)"
        );
    }
    Ok(())
}

/// Ring adoption for this node, having adopted the configured ring if it
/// is newer than the one the node started from, and persisted the result.
fn adopt_configured_ring(
    storage: &Arc<Storage>,
    membership: &Arc<Membership>,
    transfers: &Arc<Transfers>,
    initial: RingDocument,
) -> anyhow::Result<Arc<RingAdoption>> {
    let rings = Arc::new(RingAdoption::new(
        storage.clone(),
        membership.clone(),
        transfers.clone(),
    ));
    rings
        .adopt(initial)
        .context("adopting the configured ring")?;
    rings.persist_current().context("persisting the ring")?;
    Ok(rings)
}

/// The maintenance tasks, paced as configured; the members given with
/// --peer (but this node) are gossip's seeds. Built, not started (see
/// `spawn_maintenance`).
pub fn maintenance_tasks(
    config: &NodeConfig,
    storage: &Arc<Storage>,
    membership: &Arc<Membership>,
    rings: &Arc<RingAdoption>,
    transfers: &Arc<Transfers>,
    dialing: &Dialing,
) -> MaintenanceTasks {
    let maintenance = &config.maintenance;
    let seeds = config
        .peers
        .iter()
        .filter(|p| p.member.id != config.node_id)
        .cloned()
        .collect();
    MaintenanceTasks {
        gossip: Arc::new(Gossip::new(
            membership.clone(),
            rings.clone(),
            seeds,
            dialing.clone(),
            maintenance.gossip_interval,
        )),
        handoff: Arc::new(Handoff::new(
            storage.clone(),
            membership.clone(),
            dialing.clone(),
            maintenance.handoff,
        )),
        anti_entropy: Arc::new(AntiEntropy::new(
            storage.clone(),
            membership.clone(),
            transfers.clone(),
            dialing.clone(),
            maintenance.anti_entropy,
        )),
        tombstones: Arc::new(TombstoneGc::new(
            storage.clone(),
            membership.clone(),
            transfers.clone(),
            dialing.clone(),
            maintenance.tombstones,
            maintenance.tombstone_scan_interval,
        )),
    }
}

/// Starts the periodic tasks and the partition transfer task; all of them
/// end when `stop` turns true.
fn spawn_maintenance(
    prober: Arc<Prober>,
    tasks: &MaintenanceTasks,
    transfers: &Arc<Transfers>,
    stop: &watch::Receiver<bool>,
) {
    periodic::spawn(prober, stop.clone());
    periodic::spawn(tasks.gossip.clone(), stop.clone());
    periodic::spawn(tasks.handoff.clone(), stop.clone());
    periodic::spawn(tasks.anti_entropy.clone(), stop.clone());
    periodic::spawn(tasks.tombstones.clone(), stop.clone());
    tokio::spawn(transfers.clone().run(stop.clone()));
}

/// Binds the listeners and starts serving on them, within `limits`, until
/// `stop` turns true: the client routes on `--listen`, and the admin
/// routes with the node-to-node stream on `--internal-listen` when set
/// (else everything on `--listen`).
async fn listen(
    config: &NodeConfig,
    limits: &ConnectionLimits,
    state: Arc<AppState>,
    rpc: Arc<RpcHandler>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<JoinSet<()>> {
    let credentials = config.credentials.clone();
    let stream = api::stream_router(
        rpc,
        PeerGuard {
            credentials: credentials.clone(),
            certificate: config.tls.is_some(),
        },
    );
    let tcp = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let listener = |router, budget| Listener {
        router,
        tls: config.tls.clone(),
        budget,
        limits: limits.clone(),
    };
    let mut servers = JoinSet::new();
    match config.internal_listen {
        Some(address) => {
            let internal_tcp = TcpListener::bind(address)
                .await
                .with_context(|| format!("binding internal address {address}"))?;
            let admin = api::admin_router(state.clone(), credentials.clone());
            let internal = listener(admin.merge(stream), Budget::peers(limits));
            servers.spawn(internal.serve(internal_tcp, stop.clone()));
            let client = api::client_router(state, credentials, false);
            let client = listener(client, Budget::clients(limits));
            servers.spawn(client.serve(tcp, stop.clone()));
        }
        None => {
            let client = api::client_router(state, credentials, true);
            let shared = listener(client.merge(stream), Budget::shared(limits));
            servers.spawn(shared.serve(tcp, stop.clone()));
        }
    }
    Ok(servers)
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
