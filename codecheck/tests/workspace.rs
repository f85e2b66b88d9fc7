//! The workspace's own sources keep the structural rules.

use dynamo_codecheck::{layering, length, modules, workspace};

#[test]
fn every_crate_has_an_acyclic_module_graph() {
    let root = workspace::root();
    let mut report = Vec::new();
    for target in workspace::targets(&root).expect("workspace targets") {
        let krate = modules::read_crate(&target.root).expect("module tree");
        for cycle in layering::cycles(&krate) {
            let edges: Vec<String> = cycle
                .edges
                .iter()
                .map(|(e, s)| format!("{} -> {} ({}:{})", e.from, e.to, s.file.display(), s.line))
                .collect();
            report.push(format!(
                "{} `{}`: {}",
                target.name,
                cycle.parent.join("::"),
                edges.join("; ")
            ));
        }
    }
    assert!(
        report.is_empty(),
        "module cycles (run `cargo run -p dynamo-codecheck`):\n{}",
        report.join("\n")
    );
}

#[test]
fn no_function_outside_tests_is_longer_than_the_limit() {
    let root = workspace::root();
    let mut over = Vec::new();
    for file in workspace::source_files(&root).expect("source files") {
        for f in length::functions(&file).expect("functions") {
            if f.lines > length::MAX_LINES {
                over.push(format!(
                    "{} lines: {} ({}:{})",
                    f.lines,
                    f.name,
                    f.file.display(),
                    f.line
                ));
            }
        }
    }
    assert!(
        over.is_empty(),
        "functions over {} lines:\n{}",
        length::MAX_LINES,
        over.join("\n")
    );
}

#[test]
fn the_checks_read_every_member() {
    let root = workspace::root();
    let targets = workspace::targets(&root).expect("workspace targets");
    for expected in [
        "ring/lib",
        "node/lib",
        "node/main",
        "operator/lib",
        "bench/main",
        "codecheck/lib",
    ] {
        assert!(
            targets.iter().any(|t| t.name == expected),
            "{expected} missing from {targets:?}"
        );
    }
    let node = modules::read_crate(&root.join("node/src/lib.rs")).expect("node modules");
    assert!(
        node.modules.len() > 20,
        "the node's modules were found: {}",
        node.modules.len()
    );
}
