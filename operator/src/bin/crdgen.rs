//! Prints the DynamoCluster CRD YAML, or writes it to the committed path
//! with `--write`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use dynamo_operator::crdgen::{CRD_PATH, crd_yaml};

/// Generate the DynamoCluster CustomResourceDefinition.
#[derive(Parser)]
struct Args {
    /// Print to standard output instead of writing the committed file.
    #[arg(long)]
    stdout: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let yaml = crd_yaml().context("rendering the CRD")?;
    if args.stdout {
        print!("{yaml}");
        return Ok(());
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CRD_PATH);
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {CRD_PATH}");
    Ok(())
}
