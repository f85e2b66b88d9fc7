//! `dynamoctl`: a cluster's status, ring, membership changes, transfers,
//! keys and backups, for people (tables, a progress bar) and scripts (`-o json`, exit
//! codes: 0 done, 1 failed, 2 usage, 3 key not found, 4 node unreachable,
//! 5 token refused).

mod backup;
mod client;
mod cluster;
mod kv;
mod members;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use client::{Client, CtlError};
use output::Format;

#[derive(Parser)]
#[command(
    name = "dynamoctl",
    version,
    about = "Inspect and operate a Dynamo cluster"
)]
struct Cli {
    /// A node's client address (HOST:PORT or URL).
    #[arg(
        long,
        env = "DYNAMO_NODE",
        default_value = "127.0.0.1:7000",
        global = true
    )]
    node: String,
    /// That node's admin address (its internal port) when it is not --node.
    #[arg(long, env = "DYNAMO_ADMIN", global = true)]
    admin: Option<String>,
    /// Bearer token (a client token for keys, the admin token for the rest).
    #[arg(long, env = "DYNAMO_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Bearer token for the admin routes, when it is not --token.
    #[arg(
        long,
        env = "DYNAMO_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
    /// PEM file of the CA the nodes' certificates chain to: talk HTTPS.
    #[arg(long, env = "DYNAMO_CA", global = true)]
    ca: Option<PathBuf>,
    /// Output: text tables, or JSON for scripts.
    #[arg(short = 'o', long, value_enum, default_value = "text", global = true)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One line per member: state, zone, partitions owned, hints held,
    /// last heard from.
    Status,
    /// Partition ownership per member and how balanced it is.
    Ring,
    /// Each member's transfers for its current ring.
    Transfers,
    /// Add or remove members (the plan is shown first).
    Members {
        #[command(subcommand)]
        change: members::Change,
    },
    /// Read a key: its value, or its siblings, and the context.
    Get(kv::GetArgs),
    /// Write a key (give the context of the read it replaces).
    Put(kv::PutArgs),
    /// Delete a key (give the context of the read it replaces).
    Delete(kv::DeleteArgs),
    /// Back up, verify and restore the cluster's data.
    Backup {
        #[command(subcommand)]
        command: backup::Command,
    },
}

/// What a command needs: the clients and where to send what.
pub struct Target {
    /// Client for the key routes.
    pub client: Client,
    /// Client for the admin routes.
    pub admin: Client,
    /// The node's client address.
    pub node: String,
    /// The node's admin address.
    pub admin_address: String,
    /// The admin token.
    pub admin_token: Option<String>,
    /// The CA file, when the nodes serve HTTPS.
    pub ca: Option<PathBuf>,
    /// Output format.
    pub format: Format,
}

async fn run(cli: Cli) -> Result<(), CtlError> {
    let admin_token = cli.admin_token.clone().or(cli.token.clone());
    let target = Target {
        client: Client::new(cli.token, cli.ca.as_deref())?,
        admin: Client::new(admin_token.clone(), cli.ca.as_deref())?,
        admin_address: cli.admin.unwrap_or_else(|| cli.node.clone()),
        admin_token,
        ca: cli.ca,
        node: cli.node,
        format: cli.output,
    };
    match cli.command {
        Command::Status => cluster::status(&target).await,
        Command::Ring => cluster::ring(&target).await,
        Command::Transfers => cluster::transfers(&target).await,
        Command::Members { change } => members::run(&target, change).await,
        Command::Get(args) => kv::get(&target, args).await,
        Command::Put(args) => kv::put(&target, args).await,
        Command::Delete(args) => kv::delete(&target, args).await,
        Command::Backup { command } => backup::run(&target, command).await,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dynamoctl: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
