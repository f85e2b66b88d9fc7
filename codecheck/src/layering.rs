//! The layering rule: among the children of any module, "uses" must form
//! a directed acyclic graph.
//!
//! Code in child `a`'s subtree that names a path into child `b`'s subtree
//! is an edge `a → b` in the graph of their parent. A child naming its
//! parent's own items, or a parent naming its children, is no edge: a
//! parent is the layer that gathers its children.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::modules::{CrateModules, ModulePath};

/// One edge between two sibling modules, with one place that makes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The parent whose children the edge joins.
    pub parent: ModulePath,
    /// The child that uses.
    pub from: String,
    /// The child that is used.
    pub to: String,
}

/// Where an edge is made: a file and line.
#[derive(Debug, Clone)]
pub struct Site {
    /// The file holding the reference.
    pub file: PathBuf,
    /// Its line.
    pub line: usize,
}

/// A set of sibling modules that use each other in a circle.
#[derive(Debug)]
pub struct Cycle {
    /// The parent of the modules.
    pub parent: ModulePath,
    /// The modules in the cycle (a strongly connected component).
    pub members: Vec<String>,
    /// The edges between them, each with one site that makes it.
    pub edges: Vec<(Edge, Site)>,
}

/// Every sibling edge of the crate, each with its first site.
pub fn edges(krate: &CrateModules) -> BTreeMap<Edge, Site> {
    let mut edges = BTreeMap::new();
    for (from, module) in &krate.modules {
        for reference in &module.references {
            if let Some(edge) = sibling_edge(from, &reference.target) {
                edges.entry(edge).or_insert_with(|| Site {
                    file: module.file.clone(),
                    line: reference.line,
                });
            }
        }
    }
    edges
}

/// The edge between the children of the deepest common ancestor of `from`
/// and `to`, when neither contains the other.
fn sibling_edge(from: &ModulePath, to: &ModulePath) -> Option<Edge> {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    if common == from.len() || common == to.len() {
        return None;
    }
    Some(Edge {
        parent: from[..common].to_vec(),
        from: from[common].clone(),
        to: to[common].clone(),
    })
}

/// The cycles among sibling modules of the crate (empty when it is
/// layered).
pub fn cycles(krate: &CrateModules) -> Vec<Cycle> {
    let edges = edges(krate);
    let parents: BTreeSet<&ModulePath> = edges.keys().map(|e| &e.parent).collect();
    parents
        .into_iter()
        .flat_map(|parent| {
            let local: Vec<(&Edge, &Site)> =
                edges.iter().filter(|(e, _)| &e.parent == parent).collect();
            components(&local)
                .into_iter()
                .filter(|members| members.len() > 1)
                .map(|members| Cycle {
                    parent: parent.clone(),
                    edges: local
                        .iter()
                        .filter(|(e, _)| members.contains(&e.from) && members.contains(&e.to))
                        .map(|(e, s)| ((*e).clone(), (*s).clone()))
                        .collect(),
                    members,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Strongly connected components of the graph `edges` (Tarjan).
fn components(edges: &[(&Edge, &Site)]) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (edge, _) in edges {
        graph.entry(&edge.from).or_default().push(&edge.to);
        graph.entry(&edge.to).or_default();
    }
    let mut tarjan = Tarjan::new(&graph);
    for node in graph.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    tarjan.components
}

/// State of Tarjan's strongly-connected-components walk.
struct Tarjan<'a> {
    graph: &'a BTreeMap<&'a str, Vec<&'a str>>,
    next: usize,
    index: BTreeMap<&'a str, usize>,
    low: BTreeMap<&'a str, usize>,
    stack: Vec<&'a str>,
    on_stack: BTreeSet<&'a str>,
    components: Vec<Vec<String>>,
}

impl<'a> Tarjan<'a> {
    fn new(graph: &'a BTreeMap<&'a str, Vec<&'a str>>) -> Tarjan<'a> {
        Tarjan {
            graph,
            next: 0,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            components: Vec::new(),
        }
    }

    fn visit(&mut self, node: &'a str) {
        self.index.insert(node, self.next);
        self.low.insert(node, self.next);
        self.next += 1;
        self.stack.push(node);
        self.on_stack.insert(node);
        for &next in &self.graph[node] {
            if !self.index.contains_key(next) {
                self.visit(next);
                let low = self.low[node].min(self.low[next]);
                self.low.insert(node, low);
            } else if self.on_stack.contains(next) {
                let low = self.low[node].min(self.index[next]);
                self.low.insert(node, low);
            }
        }
        if self.low[node] == self.index[node] {
            self.pop_component(node);
        }
    }

    fn pop_component(&mut self, root: &str) {
        let mut members = Vec::new();
        while let Some(top) = self.stack.pop() {
            self.on_stack.remove(top);
            members.push(top.to_string());
            if top == root {
                break;
            }
        }
        members.sort();
        self.components.push(members);
    }
}
