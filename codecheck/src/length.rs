//! Function lengths, from the `fn` keyword's line to the closing brace.

use std::path::{Path, PathBuf};

use anyhow::Context;
use syn::visit::Visit;

use crate::syntax::{is_test_fn, is_test_only};

/// One function and how long it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnLength {
    /// The file it is written in.
    pub file: PathBuf,
    /// Its name (`Type::name` for methods).
    pub name: String,
    /// The line of its `fn` keyword.
    pub line: usize,
    /// Lines from the `fn` keyword to the closing brace, both included.
    pub lines: usize,
}

/// Every function of `file` outside test code, with its length.
pub fn functions(file: &Path) -> anyhow::Result<Vec<FnLength>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed = syn::parse_file(&text).with_context(|| format!("parsing {}", file.display()))?;
    let mut measure = Measure {
        file: file.to_path_buf(),
        owner: None,
        found: Vec::new(),
    };
    measure.visit_file(&parsed);
    Ok(measure.found)
}

/// Walks a file recording function lengths.
struct Measure {
    file: PathBuf,
    /// The type whose `impl` block is being walked.
    owner: Option<String>,
    found: Vec<FnLength>,
}

impl Measure {
    fn record(&mut self, ident: &syn::Ident, fn_token: &syn::token::Fn, block: &syn::Block) {
        let first = fn_token.span.start().line;
        let last = block.brace_token.span.close().end().line;
        let name = match &self.owner {
            Some(owner) => format!("{owner}::{ident}"),
            None => ident.to_string(),
        };
        self.found.push(FnLength {
            file: self.file.clone(),
            name,
            line: first,
            lines: last + 1 - first,
        });
    }
}

impl<'ast> Visit<'ast> for Measure {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if is_test_only(&item.attrs) || is_test_fn(&item.attrs) {
            return;
        }
        self.record(&item.sig.ident, &item.sig.fn_token, &item.block);
        syn::visit::visit_item_fn(self, item);
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if is_test_only(&item.attrs) {
            return;
        }
        let owner = match &*item.self_ty {
            syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
            _ => None,
        };
        let outer = std::mem::replace(&mut self.owner, owner);
        syn::visit::visit_item_impl(self, item);
        self.owner = outer;
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        if is_test_only(&item.attrs) || is_test_fn(&item.attrs) {
            return;
        }
        self.record(&item.sig.ident, &item.sig.fn_token, &item.block);
        syn::visit::visit_impl_item_fn(self, item);
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        if let Some(block) = &item.default {
            self.record(&item.sig.ident, &item.sig.fn_token, block);
        }
        syn::visit::visit_trait_item_fn(self, item);
    }
}

/// The longest a non-test function may be, in lines.
pub const MAX_LINES: usize = 120;
