//! Writes each CRD's YAML to its committed path, or prints them all
//! with `--stdout`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use dynamo_operator::crdgen::{crd_yaml, crds};

/// Generate the CustomResourceDefinitions.
#[derive(Parser)]
struct Args {
    /// Print to standard output instead of writing the committed files.
    #[arg(long)]
    stdout: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for (path, crd) in crds() {
        let yaml = crd_yaml(&crd).with_context(|| format!("rendering {path}"))?;
        if args.stdout {
            print!("---\n{yaml}");
            continue;
        }
        let file = root.join(&path);
        std::fs::write(&file, yaml).with_context(|| format!("writing {}", file.display()))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
