//! What one source file says about modules: the modules it declares, what
//! its `use` items bring in, and every path it writes, each in the module
//! (the file's own, or one written inline in it) where it stands.

use super::lexer::{tokens, Tok, Token};

/// A module of a file: the file's own (`inline` empty) or a `mod name { .. }`
/// inside it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The inline modules from the file's module down to this one.
    pub inline: Vec<String>,
    /// `mod name;`: a module in a file of its own.
    pub file_children: Vec<String>,
    /// `mod name { .. }`.
    pub inline_children: Vec<String>,
    pub uses: Vec<Use>,
    pub paths: Vec<PathRef>,
}

/// One leaf of a `use` tree: `use a::b::{c as d, e::*};` has two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    /// The path as written, first segment included (`crate`, `super`, ...).
    pub path: Vec<String>,
    /// The name it is known by here; `None` for a glob.
    pub name: Option<String>,
    /// `pub use` (any visibility): the module re-exports it.
    pub public: bool,
    pub line: usize,
}

/// A path written outside `use` items: `store::run(..)`, `crate::x::Y`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRef {
    pub path: Vec<String>,
    pub line: usize,
}

/// The scopes of one file, the file's own first.
pub fn parse(src: &str) -> Vec<Scope> {
    let toks = tokens(src);
    let mut scopes = vec![Scope::default()];
    // (scope index, brace depth at which it closes)
    let mut open: Vec<(usize, usize)> = vec![(0, 0)];
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let current = open.last().map_or(0, |o| o.0);
        match &toks[i].tok {
            Tok::Open => {
                depth += 1;
                i += 1;
            }
            Tok::Close => {
                if open.len() > 1 && open.last().is_some_and(|o| o.1 == depth) {
                    open.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(w) if w == "mod" => {
                match (ident(&toks, i + 1), toks.get(i + 2).map(|t| &t.tok)) {
                    (Some(name), Some(Tok::Semi)) => {
                        scopes[current].file_children.push(name);
                        i += 3;
                    }
                    (Some(name), Some(Tok::Open)) => {
                        scopes[current].inline_children.push(name.clone());
                        let mut inline = scopes[current].inline.clone();
                        inline.push(name);
                        scopes.push(Scope {
                            inline,
                            ..Scope::default()
                        });
                        depth += 1;
                        open.push((scopes.len() - 1, depth));
                        i += 3;
                    }
                    _ => i += 1,
                }
            }
            Tok::Ident(w) if w == "use" && !after_dot(&toks, i) => {
                let public = is_public(&toks, i);
                let line = toks[i].line;
                let mut j = i + 1;
                let mut leaves = Vec::new();
                use_tree(&toks, &mut j, Vec::new(), &mut leaves);
                for (path, name) in leaves {
                    scopes[current].uses.push(Use {
                        path,
                        name,
                        public,
                        line,
                    });
                }
                i = j;
            }
            Tok::Ident(_) if !after_dot(&toks, i) && sep_at(&toks, i + 1) => {
                let line = toks[i].line;
                let mut path = Vec::new();
                let mut j = i;
                while let Some(seg) = ident(&toks, j) {
                    path.push(seg);
                    if sep_at(&toks, j + 1) {
                        j += 2;
                    } else {
                        j += 1;
                        break;
                    }
                }
                scopes[current].paths.push(PathRef { path, line });
                i = j.max(i + 1);
            }
            _ => i += 1,
        }
    }
    scopes
}

fn ident(toks: &[Token], i: usize) -> Option<String> {
    match toks.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(s)) => Some(s.clone()),
        _ => None,
    }
}

fn sep_at(toks: &[Token], i: usize) -> bool {
    matches!(toks.get(i).map(|t| &t.tok), Some(Tok::PathSep))
}

fn after_dot(toks: &[Token], i: usize) -> bool {
    i > 0 && matches!(toks[i - 1].tok, Tok::Dot)
}

/// `pub use`, `pub(crate) use`, `pub(in a::b) use`: any visibility.
fn is_public(toks: &[Token], use_at: usize) -> bool {
    let mut j = use_at;
    if j > 0 && toks[j - 1].tok == Tok::Other(')') {
        while j > 0 && toks[j - 1].tok != Tok::Other('(') {
            j -= 1;
        }
        j = j.saturating_sub(1);
    }
    j > 0 && toks[j - 1].tok == Tok::Ident("pub".to_string())
}

/// Reads one use tree at `*j`, appending its leaves to `out`; leaves `*j`
/// past the tree and its `;` where it ends the item.
fn use_tree(
    toks: &[Token],
    j: &mut usize,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    let mut path = prefix;
    if sep_at(toks, *j) {
        *j += 1;
    }
    loop {
        match toks.get(*j).map(|t| &t.tok) {
            Some(Tok::Ident(seg)) => {
                let seg = seg.clone();
                *j += 1;
                if sep_at(toks, *j) {
                    path.push(seg);
                    *j += 1;
                    continue;
                }
                let name = if ident(toks, *j).as_deref() == Some("as") {
                    let alias = ident(toks, *j + 1);
                    *j += 2;
                    alias
                } else if seg == "self" {
                    path.last().cloned()
                } else {
                    Some(seg.clone())
                };
                if seg != "self" {
                    path.push(seg);
                }
                // `use x as _;` brings in no name.
                let name = name.filter(|n| n != "_");
                out.push((path, name));
                break;
            }
            Some(Tok::Star) => {
                *j += 1;
                out.push((path, None));
                break;
            }
            Some(Tok::Open) => {
                *j += 1;
                loop {
                    match toks.get(*j).map(|t| &t.tok) {
                        Some(Tok::Close) => {
                            *j += 1;
                            break;
                        }
                        Some(Tok::Comma) => *j += 1,
                        None => break,
                        _ => use_tree(toks, j, path.clone(), out),
                    }
                }
                break;
            }
            _ => break,
        }
    }
    if matches!(toks.get(*j).map(|t| &t.tok), Some(Tok::Semi)) {
        *j += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(uses: &[Use]) -> Vec<(String, Option<String>, bool)> {
        uses.iter()
            .map(|u| (u.path.join("::"), u.name.clone(), u.public))
            .collect()
    }

    #[test]
    fn use_trees_expand_to_their_leaves() {
        let scopes = parse(
            "use crate::{a::{b, c as d}, e::*};\npub(crate) use super::f::{self, G};\nuse std::io as _;",
        );
        let s = |x: &str| x.to_string();
        assert_eq!(
            names(&scopes[0].uses),
            [
                (s("crate::a::b"), Some(s("b")), false),
                (s("crate::a::c"), Some(s("d")), false),
                (s("crate::e"), None, false),
                (s("super::f"), Some(s("f")), true),
                (s("super::f::G"), Some(s("G")), true),
                (s("std::io"), None, false),
            ]
        );
    }

    #[test]
    fn modules_declared_inline_and_in_files_and_paths_in_each() {
        let src = "mod a;\npub mod b;\nfn f() { a::run(); x.y::<T>(); }\n#[cfg(test)]\nmod tests {\n    use super::*;\n    fn t() { crate::c::D::new(); }\n}\nfn g() { b::go() }\n";
        let scopes = parse(src);
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[0].file_children, ["a", "b"]);
        assert_eq!(scopes[0].inline_children, ["tests"]);
        let paths = |s: &Scope| {
            s.paths
                .iter()
                .map(|p| (p.path.join("::"), p.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths(&scopes[0]),
            [("a::run".to_string(), 3), ("b::go".to_string(), 9)]
        );
        assert_eq!(scopes[1].inline, ["tests"]);
        assert_eq!(paths(&scopes[1]), [("crate::c::D::new".to_string(), 7)]);
        assert_eq!(names(&scopes[1].uses)[0].0, "super");
    }
}
