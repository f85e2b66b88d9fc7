//! The workspace's crates and their source files, as the checks see them.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// One compilation target's root file (`src/lib.rs`, `src/main.rs`,
/// `src/bin/*.rs`) of a workspace member.
#[derive(Debug, Clone)]
pub struct Target {
    /// The member's directory name and the root file's stem, e.g.
    /// `node/lib`.
    pub name: String,
    /// The root file.
    pub root: PathBuf,
}

/// The workspace root: the directory above this crate.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the codecheck crate sits in the workspace")
        .to_path_buf()
}

/// The member directories listed in the workspace's `Cargo.toml`.
pub fn members(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let value: toml::Value = toml::from_str(&text).context("parsing the workspace Cargo.toml")?;
    let members = value
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .context("the workspace Cargo.toml lists no members")?;
    members
        .iter()
        .map(|m| {
            m.as_str()
                .map(|s| root.join(s))
                .context("a member that is not a string")
        })
        .collect()
}

/// Every target root of every member.
pub fn targets(root: &Path) -> anyhow::Result<Vec<Target>> {
    let mut targets = Vec::new();
    for member in members(root)? {
        let dir_name = member
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let src = member.join("src");
        let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"]
            .iter()
            .map(|f| src.join(f))
            .filter(|p| p.exists())
            .collect();
        roots.extend(rust_files(&src.join("bin"))?);
        targets.extend(roots.into_iter().map(|root| Target {
            name: format!(
                "{dir_name}/{}",
                root.file_stem().unwrap_or_default().to_string_lossy()
            ),
            root,
        }));
    }
    Ok(targets)
}

/// Every `.rs` file under each member's `src` (tests, benches and examples
/// directories are test code).
pub fn source_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for member in members(root)? {
        collect(&member.join("src"), &mut files)?;
    }
    files.sort();
    Ok(files)
}

fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}
