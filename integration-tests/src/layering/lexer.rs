//! Just enough of a Rust lexer to find paths: identifiers and the punctuation
//! that joins them, with comments, strings, characters and lifetimes dropped.

/// One token that can be part of a path or a `use` tree, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Open,
    Close,
    Semi,
    Comma,
    Star,
    /// `.`, after which an identifier is a field or method, not a path.
    Dot,
    /// Any other punctuation, kept so that paths on either side of it stay
    /// apart.
    Other(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub line: usize,
}

/// The tokens of `src`. Never fails: text it does not understand becomes
/// `Tok::Other`, which at worst hides a path, never invents one.
pub fn tokens(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let push = |out: &mut Vec<Token>, tok| {
            out.push(Token {
                tok,
                line: start_line,
            })
        };
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if chars[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => i = skip_string(&chars, i + 1, &mut line),
            '\'' => i = skip_quote(&chars, i),
            c if c.is_ascii_digit() => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                if let Some(end) = raw_string_end(&chars, i, &mut line) {
                    i = end;
                    continue;
                }
                let mut j = i;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                // Byte and C strings and byte characters: the prefix is not a name.
                if matches!(word.as_str(), "b" | "c" | "br" | "cr")
                    && matches!(chars.get(j), Some('"') | Some('\''))
                {
                    i = j;
                    continue;
                }
                // A raw identifier (`r#type`) names what follows the `#`.
                if word == "r" && chars.get(j) == Some(&'#') {
                    let mut k = j + 1;
                    while k < chars.len() && (chars[k].is_alphanumeric() || chars[k] == '_') {
                        k += 1;
                    }
                    push(&mut out, Tok::Ident(chars[j + 1..k].iter().collect()));
                    i = k;
                    continue;
                }
                push(&mut out, Tok::Ident(word));
                i = j;
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                push(&mut out, Tok::PathSep);
                i += 2;
            }
            '{' => {
                push(&mut out, Tok::Open);
                i += 1;
            }
            '}' => {
                push(&mut out, Tok::Close);
                i += 1;
            }
            ';' => {
                push(&mut out, Tok::Semi);
                i += 1;
            }
            ',' => {
                push(&mut out, Tok::Comma);
                i += 1;
            }
            '*' => {
                push(&mut out, Tok::Star);
                i += 1;
            }
            '.' => {
                push(&mut out, Tok::Dot);
                i += 1;
            }
            c => {
                push(&mut out, Tok::Other(c));
                i += 1;
            }
        }
    }
    out
}

/// Past the closing quote of a string whose body starts at `i`.
fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            '\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    i
}

/// Past a character literal or a lifetime starting at the quote `i`.
fn skip_quote(chars: &[char], i: usize) -> usize {
    match (chars.get(i + 1), chars.get(i + 2)) {
        // '\n', '\'', '\u{1F600}'
        (Some('\\'), _) => {
            let mut j = i + 3;
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            j + 1
        }
        // 'a'
        (Some(_), Some('\'')) => i + 3,
        // A lifetime or label: the name is not a path.
        _ => {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            j
        }
    }
}

/// Where a raw string (`r"..."`, `br#"..."#`, `cr"..."`) starting at `i`
/// ends, if one starts there.
fn raw_string_end(chars: &[char], i: usize, line: &mut usize) -> Option<usize> {
    let mut j = i;
    if matches!(chars.get(j), Some('b') | Some('c')) {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '\n' {
            *line += 1;
        }
        if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(src: &str) -> Vec<String> {
        tokens(src)
            .into_iter()
            .filter_map(|t| match t.tok {
                Tok::Ident(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn comments_strings_and_characters_hide_their_contents() {
        let src = r####"
            // crate::a
            /* crate::b /* nested crate::c */ still */
            let s = "crate::d \" crate::e";
            let r = r#"crate::f "# ;
            let b = b"crate::g";
            let c = '"'; let q = '\''; let l: &'static str = x;
            real
        "####;
        assert_eq!(
            idents(src),
            [
                "let", "s", "let", "r", "let", "b", "let", "c", "let", "q", "let", "l", "str", "x",
                "real"
            ]
        );
    }

    #[test]
    fn lines_are_counted_through_comments_and_strings() {
        let toks = tokens("a\n/* x\n y */ \"p\nq\" b\nc");
        let lines: Vec<usize> = toks.iter().map(|t| t.line).collect();
        assert_eq!(lines, [1, 4, 5]);
    }

    #[test]
    fn raw_identifiers_are_names() {
        assert_eq!(idents("crate::r#type::X"), ["crate", "type", "X"]);
    }
}
