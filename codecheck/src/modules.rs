//! A crate's module tree and the paths each module names into the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use syn::spanned::Spanned;
use syn::visit::Visit;

use crate::syntax::is_test_only;

/// A module path from the crate root (`[]` is the root itself).
pub type ModulePath = Vec<String>;

/// One module of a crate, with the references its own code makes (code in
/// its child modules belongs to the children).
#[derive(Debug)]
pub struct Module {
    /// The file the module's items are written in.
    pub file: PathBuf,
    /// Where the module names another module of the crate.
    pub references: Vec<Reference>,
}

/// A path in a module's code that leads into a module of the same crate.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The module the path leads to (the longest known prefix).
    pub target: ModulePath,
    /// The line it is written on.
    pub line: usize,
}

/// The modules of one crate target, by path.
#[derive(Debug)]
pub struct CrateModules {
    /// Every module, the root included.
    pub modules: BTreeMap<ModulePath, Module>,
}

/// A path as written, before it is resolved against the module tree.
struct RawPath {
    segments: Vec<String>,
    line: usize,
}

/// Reads the crate whose root file (`lib.rs`, `main.rs`, a `src/bin`
/// file) is `root`.
pub fn read_crate(root: &Path) -> anyhow::Result<CrateModules> {
    let mut raw = BTreeMap::new();
    let mut files = BTreeMap::new();
    let dir = root.parent().context("crate root has a directory")?;
    read_file(root, Vec::new(), dir.to_path_buf(), &mut raw, &mut files)?;
    let modules = files
        .into_iter()
        .map(|(path, file)| {
            let references =
                resolve_all(&path, raw.get(&path).map_or(&[][..], Vec::as_slice), &raw);
            (path, Module { file, references })
        })
        .collect();
    Ok(CrateModules { modules })
}

/// Parses `file` as module `path` and, recursively, its child modules.
fn read_file(
    file: &Path,
    path: ModulePath,
    child_dir: PathBuf,
    raw: &mut BTreeMap<ModulePath, Vec<RawPath>>,
    files: &mut BTreeMap<ModulePath, PathBuf>,
) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed = syn::parse_file(&text).with_context(|| format!("parsing {}", file.display()))?;
    read_items(file, &parsed.items, path, child_dir, raw, files)
}

/// Records module `path`'s items (written in `file`) and descends into its
/// child modules, whose files are looked for in `child_dir`.
fn read_items(
    file: &Path,
    items: &[syn::Item],
    path: ModulePath,
    child_dir: PathBuf,
    raw: &mut BTreeMap<ModulePath, Vec<RawPath>>,
    files: &mut BTreeMap<ModulePath, PathBuf>,
) -> anyhow::Result<()> {
    files.insert(path.clone(), file.to_path_buf());
    let mut collector = PathCollector::default();
    for item in items {
        match item {
            syn::Item::Mod(module) if !is_test_only(&module.attrs) => {
                read_child(file, module, &path, &child_dir, raw, files)?;
            }
            syn::Item::Mod(_) => {}
            item => collector.visit_item(item),
        }
    }
    raw.entry(path).or_default().extend(collector.paths);
    Ok(())
}

/// Reads child module `module` of `parent` (inline, or from its file).
fn read_child(
    file: &Path,
    module: &syn::ItemMod,
    parent: &ModulePath,
    child_dir: &Path,
    raw: &mut BTreeMap<ModulePath, Vec<RawPath>>,
    files: &mut BTreeMap<ModulePath, PathBuf>,
) -> anyhow::Result<()> {
    if module.attrs.iter().any(|a| a.path().is_ident("path")) {
        bail!(
            "{}: `#[path]` on mod {} is not supported",
            file.display(),
            module.ident
        );
    }
    let name = module.ident.to_string();
    let mut path = parent.clone();
    path.push(name.clone());
    let dir = child_dir.join(&name);
    if let Some((_, items)) = &module.content {
        return read_items(file, items, path, dir, raw, files);
    }
    let flat = child_dir.join(format!("{name}.rs"));
    let nested = dir.join("mod.rs");
    let child_file = if flat.exists() { flat } else { nested };
    read_file(&child_file, path, dir, raw, files)
}

/// Resolves every raw path of module `from` to the module it leads into,
/// keeping those that lead into the crate.
fn resolve_all(
    from: &ModulePath,
    paths: &[RawPath],
    known: &BTreeMap<ModulePath, Vec<RawPath>>,
) -> Vec<Reference> {
    paths
        .iter()
        .filter_map(|raw| {
            let absolute = absolute(from, &raw.segments, known)?;
            let target = longest_module_prefix(&absolute, known);
            Some(Reference {
                target,
                line: raw.line,
            })
        })
        .collect()
}

/// `segments` as a path from the crate root, when it starts with `crate`,
/// `self`, `super` or the name of a child of `from`; `None` otherwise (an
/// external crate, a local item, a prelude name).
fn absolute(
    from: &ModulePath,
    segments: &[String],
    known: &BTreeMap<ModulePath, Vec<RawPath>>,
) -> Option<ModulePath> {
    let first = segments.first()?;
    match first.as_str() {
        "crate" => Some(segments[1..].to_vec()),
        "self" => Some(from.iter().chain(&segments[1..]).cloned().collect()),
        "super" => {
            let mut base = from.clone();
            let mut rest = segments;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            Some(base)
        }
        name => {
            let mut child = from.clone();
            child.push(name.to_string());
            known
                .contains_key(&child)
                .then(|| from.iter().chain(segments).cloned().collect())
        }
    }
}

/// The longest prefix of `path` that is a module of the crate.
fn longest_module_prefix(
    path: &[String],
    known: &BTreeMap<ModulePath, Vec<RawPath>>,
) -> ModulePath {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| known.contains_key(prefix))
        .unwrap_or_default()
}

/// Collects the paths an item's code names: `use` trees and paths in
/// types and expressions, skipping test-only items and nested modules
/// (read as modules of their own).
#[derive(Default)]
struct PathCollector {
    paths: Vec<RawPath>,
}

impl PathCollector {
    /// Records every path a `use` tree imports, `prefix` included.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.push_use(prefix, Some(&n.ident)),
            syn::UseTree::Rename(r) => self.push_use(prefix, Some(&r.ident)),
            syn::UseTree::Glob(g) => self.push(prefix.clone(), g.star_token.span().start().line),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }

    /// Records `prefix::last` (or `prefix` for `self`).
    fn push_use(&mut self, prefix: &[String], last: Option<&syn::Ident>) {
        let mut segments = prefix.to_vec();
        let line = last.map_or(0, |i| i.span().start().line);
        if let Some(ident) = last.filter(|i| *i != "self") {
            segments.push(ident.to_string());
        }
        self.push(segments, line);
    }

    fn push(&mut self, segments: Vec<String>, line: usize) {
        if !segments.is_empty() {
            self.paths.push(RawPath { segments, line });
        }
    }
}

impl<'ast> Visit<'ast> for PathCollector {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if !is_test_only(&item.attrs) {
            self.use_tree(&mut Vec::new(), &item.tree);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.push(segments, path.span().start().line);
        syn::visit::visit_path(self, path);
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_impl_item_fn(self, item);
        }
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_impl(self, item);
        }
    }
}
