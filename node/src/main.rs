//! `dynamo-node`: run one node (`serve`) or a local cluster (`local`).

use clap::{Parser, Subcommand};
use dynamo_node::config::{ExplicitServeArgs, defaults};
use dynamo_node::local::{self, LocalArgs};
use dynamo_node::logging::{self, LogFormat};
use dynamo_node::server;

/// mimalloc: glibc malloc showed up as ~15% of a node's CPU under load,
/// and fragments more with many small, short-lived buffers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "dynamo-node",
    version,
    about = "A Dynamo-style replicated key-value store node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Serve(Box<ExplicitServeArgs>),
    /// Run a multi-node cluster on this machine, one process per node.
    Local(LocalArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let args = args.0.with_file()?;
            let format = args.log_format.unwrap_or_default();
            let node = args.node_id.as_deref();
            let zone = args.zone.as_deref().unwrap_or(defaults::ZONE);
            // Exports the spans still queued when dropped, as `main` ends.
            let tracing = logging::node_tracing(format, args.otlp_endpoint.as_deref(), node, zone)?;
            logging::init(format, node, tracing.as_ref());
            let config = args.validate()?;
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.worker_threads)
                .enable_all()
                .build()?
                .block_on(server::serve(config))
        }
        Command::Local(args) => {
            logging::init(LogFormat::from_env(), None, None);
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(local::run(args))
        }
    }
}
