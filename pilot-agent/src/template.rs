//! Custom bootstrap templates (`--template-file`): a JSON document in which
//! `{{ name }}` placeholders take the agent's values. A string that is just
//! a placeholder becomes the value itself (a number, an object...); a
//! placeholder inside a longer string is replaced by the value's text.
//! Unknown names are errors that say where they are, never empty strings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("template {path} is not JSON: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("template {path}, at {at}: unknown placeholder {{{{ {name} }}}} (known: {known})")]
    Unknown {
        path: PathBuf,
        at: String,
        name: String,
        known: String,
    },
    #[error("template {path}, at {at}: unclosed placeholder in {text:?}")]
    Unclosed {
        path: PathBuf,
        at: String,
        text: String,
    },
}

pub type Vars = BTreeMap<&'static str, Value>;

/// Reads and fills the template at `path`.
pub fn render_file(path: &Path, vars: &Vars) -> Result<Value, TemplateError> {
    let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    render(path, &text, vars)
}

pub fn render(path: &Path, text: &str, vars: &Vars) -> Result<Value, TemplateError> {
    let mut doc: Value = serde_json::from_str(text).map_err(|source| TemplateError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let filler = Filler { path, vars };
    filler.fill(&mut doc, "$")?;
    Ok(doc)
}

struct Filler<'a> {
    path: &'a Path,
    vars: &'a Vars,
}

impl Filler<'_> {
    fn fill(&self, v: &mut Value, at: &str) -> Result<(), TemplateError> {
        match v {
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    self.fill(child, &format!("{at}.{k}"))?;
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter_mut().enumerate() {
                    self.fill(child, &format!("{at}[{i}]"))?;
                }
            }
            Value::String(s) => {
                if let Some(new) = self.fill_string(s, at)? {
                    *v = new;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn lookup(&self, name: &str, at: &str) -> Result<&Value, TemplateError> {
        self.vars.get(name).ok_or_else(|| TemplateError::Unknown {
            path: self.path.to_path_buf(),
            at: at.to_string(),
            name: name.to_string(),
            known: self.vars.keys().copied().collect::<Vec<_>>().join(", "),
        })
    }

    /// The replacement for a string holding placeholders, if it has any.
    fn fill_string(&self, s: &str, at: &str) -> Result<Option<Value>, TemplateError> {
        if !s.contains("{{") {
            return Ok(None);
        }
        let whole = s
            .trim()
            .strip_prefix("{{")
            .and_then(|r| r.strip_suffix("}}"))
            .filter(|inner| !inner.contains("{{") && !inner.contains("}}"));
        if let Some(name) = whole {
            return self.lookup(name.trim(), at).cloned().map(Some);
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| TemplateError::Unclosed {
                path: self.path.to_path_buf(),
                at: at.to_string(),
                text: s.to_string(),
            })?;
            match self.lookup(after[..end].trim(), at)? {
                Value::String(text) => out.push_str(text),
                other => out.push_str(&other.to_string()),
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(Some(Value::String(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        [
            (
                "node_id",
                json!("sidecar~10.0.0.1~a.ns~ns.svc.cluster.local"),
            ),
            ("admin_port", json!(15000)),
            ("metadata", json!({"NAMESPACE": "ns"})),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn whole_and_embedded_placeholders() {
        let t = r#"{"node": {"id": "{{ node_id }}", "metadata": "{{metadata}}"},
                    "admin": {"port": "{{ admin_port }}", "note": "port {{ admin_port }} on {{node_id}}"}}"#;
        let v = render(Path::new("t.json"), t, &vars()).expect("renders");
        assert_eq!(
            v["node"]["id"],
            "sidecar~10.0.0.1~a.ns~ns.svc.cluster.local"
        );
        assert_eq!(v["node"]["metadata"]["NAMESPACE"], "ns");
        assert_eq!(v["admin"]["port"], 15000);
        assert_eq!(
            v["admin"]["note"],
            "port 15000 on sidecar~10.0.0.1~a.ns~ns.svc.cluster.local"
        );
    }

    #[test]
    fn errors_name_the_file_and_the_place() {
        let e = render(
            Path::new("/etc/t.json"),
            r#"{"a": [1, "{{ nope }}"]}"#,
            &vars(),
        )
        .expect_err("unknown");
        let msg = e.to_string();
        assert!(
            msg.contains("/etc/t.json") && msg.contains("$.a[1]") && msg.contains("nope"),
            "{msg}"
        );
        let e =
            render(Path::new("t.json"), r#"{"a": "x {{ node_id"}"#, &vars()).expect_err("unclosed");
        assert!(e.to_string().contains("unclosed"), "{e}");
        let e = render(Path::new("t.json"), "{not json", &vars()).expect_err("parse");
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
