//! `dynamo-node`: run one node (`serve`) or a local cluster (`local`).

use clap::{Parser, Subcommand};
use dynamo_node::config::ExplicitServeArgs;
use dynamo_node::local::{self, LocalArgs};
use dynamo_node::server;
use tracing_subscriber::EnvFilter;

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

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("DYNAMO_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve(args) => {
            let config = args.0.resolve()?;
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(config.worker_threads)
                .enable_all()
                .build()?
                .block_on(server::serve(config))
        }
        Command::Local(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(local::run(args)),
    }
}
