//! The checks on small crates written for the test: they find what they
//! must find and leave test code alone.

use std::path::Path;

use dynamo_codecheck::{layering, length, modules};

/// Writes `files` (path, text) under a fresh directory.
fn crate_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("directories");
        std::fs::write(path, text).expect("file");
    }
    dir
}

fn cycles_of(root: &Path) -> Vec<(Vec<String>, Vec<String>)> {
    let krate = modules::read_crate(root).expect("module tree");
    layering::cycles(&krate)
        .into_iter()
        .map(|c| (c.parent, c.members))
        .collect()
}

#[test]
fn a_circle_between_top_level_modules_is_found_with_its_sites() {
    let dir = crate_with(&[
        ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
        ("a.rs", "use crate::b::B;\npub struct A;\n"),
        ("b/mod.rs", "mod inner;\npub struct B;\n"),
        ("b/inner.rs", "pub fn f() -> crate::c::C { crate::c::C }\n"),
        ("c.rs", "pub struct C;\npub fn g(_: super::a::A) {}\n"),
    ]);
    let cycles = cycles_of(&dir.path().join("lib.rs"));
    assert_eq!(
        cycles,
        vec![(vec![], vec!["a".into(), "b".into(), "c".into()])]
    );
    let krate = modules::read_crate(&dir.path().join("lib.rs")).expect("module tree");
    let cycle = &layering::cycles(&krate)[0];
    let (edge, site) = cycle
        .edges
        .iter()
        .find(|(e, _)| e.from == "b")
        .expect("b -> c");
    assert_eq!(edge.to, "c");
    assert!(site.file.ends_with("b/inner.rs"));
    assert_eq!(site.line, 1);
}

#[test]
fn a_circle_between_nested_siblings_is_found_in_their_parent() {
    let dir = crate_with(&[(
        "lib.rs",
        "mod outer { mod x { use super::y::Y; pub struct X; } mod y { pub struct Y(super::x::X); } }\n",
    )]);
    assert_eq!(
        cycles_of(&dir.path().join("lib.rs")),
        vec![(vec!["outer".into()], vec!["x".into(), "y".into()])]
    );
}

#[test]
fn layers_parents_and_test_code_make_no_cycle() {
    let dir = crate_with(&[
        ("lib.rs", "pub mod low;\npub mod high;\npub use high::H;\n"),
        (
            "low.rs",
            "pub struct L;\n#[cfg(test)]\nmod tests { use crate::high::H; }\n#[cfg(test)]\nfn helper() -> crate::high::H { crate::high::H }\n",
        ),
        (
            "high/mod.rs",
            "mod part;\npub use part::H;\nuse crate::low::L;\npub fn f(_: L) {}\n",
        ),
        (
            "high/part.rs",
            "pub struct H;\nuse super::f;\nuse crate::H as Again;\n",
        ),
    ]);
    assert_eq!(cycles_of(&dir.path().join("lib.rs")), vec![]);
}

#[test]
fn long_functions_are_measured_and_tests_are_not() {
    let body = "    let _x = 1;\n".repeat(130);
    let text = format!(
        "pub fn long() {{\n{body}}}\nstruct S;\nimpl S {{\n    fn short(&self) {{}}\n}}\n\
         #[test]\nfn long_test() {{\n{body}}}\n#[cfg(test)]\nmod tests {{\n    fn helper() {{\n{body}    }}\n}}\n"
    );
    let dir = crate_with(&[("lib.rs", &text)]);
    let found = length::functions(&dir.path().join("lib.rs")).expect("functions");
    let summary: Vec<(String, usize, usize)> = found
        .into_iter()
        .map(|f| (f.name, f.line, f.lines))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("long".to_string(), 1, 132),
            ("S::short".to_string(), 135, 1)
        ]
    );
}
