//! `cargo run -p dynamo-codecheck [-- --all]`: lists module cycles and
//! functions longer than the limit (with `--all`, the 20 longest
//! functions and every sibling edge as well). Exits 1 when a rule is
//! broken.

use std::process::ExitCode;

use dynamo_codecheck::{layering, length, modules, workspace};

fn main() -> anyhow::Result<ExitCode> {
    let all = std::env::args().any(|a| a == "--all");
    let root = workspace::root();
    let mut broken = false;
    for target in workspace::targets(&root)? {
        let krate = modules::read_crate(&target.root)?;
        if all {
            for (edge, site) in layering::edges(&krate) {
                println!(
                    "{}: {}::{} -> {} ({}:{})",
                    target.name,
                    edge.parent.join("::"),
                    edge.from,
                    edge.to,
                    site.file.display(),
                    site.line
                );
            }
        }
        for cycle in layering::cycles(&krate) {
            broken = true;
            println!(
                "{}: cycle among {{{}}} in `{}`",
                target.name,
                cycle.members.join(", "),
                cycle.parent.join("::")
            );
            for (edge, site) in cycle.edges {
                println!(
                    "    {} -> {} ({}:{})",
                    edge.from,
                    edge.to,
                    site.file.display(),
                    site.line
                );
            }
        }
    }
    let mut functions = Vec::new();
    for file in workspace::source_files(&root)? {
        functions.extend(length::functions(&file)?);
    }
    functions.sort_by_key(|f| std::cmp::Reverse(f.lines));
    for f in &functions {
        let over = f.lines > length::MAX_LINES;
        broken |= over;
        if over
            || (all
                && functions
                    .iter()
                    .position(|g| g == f)
                    .is_some_and(|i| i < 20))
        {
            println!(
                "{:>4} lines  {} ({}:{}){}",
                f.lines,
                f.name,
                f.file.display(),
                f.line,
                if over { "  over the limit" } else { "" }
            );
        }
    }
    Ok(if broken {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
