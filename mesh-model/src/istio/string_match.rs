use serde::{Deserialize, Serialize};

/// Istio's `StringMatch`: exactly one of `exact`, `prefix` or `regex` (RE2 syntax).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MatchFields", into = "MatchFields")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// A header or query parameter match. Istio reads an empty `StringMatch`
/// (`x-canary: {}`) as "present, whatever its value".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MatchFields", into = "MatchFields")]
pub enum PresenceMatch {
    Present,
    Value(StringMatch),
}

impl PresenceMatch {
    pub fn value(&self) -> Option<&StringMatch> {
        match self {
            PresenceMatch::Present => None,
            PresenceMatch::Value(m) => Some(m),
        }
    }
}

/// The YAML shape both types share: a one-of written as optional fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
}

const ONE_OF: &str = "exactly one of exact, prefix or regex";

impl MatchFields {
    fn one(self) -> Result<Option<StringMatch>, String> {
        match (self.exact, self.prefix, self.regex) {
            (None, None, None) => Ok(None),
            (Some(s), None, None) => Ok(Some(StringMatch::Exact(s))),
            (None, Some(s), None) => Ok(Some(StringMatch::Prefix(s))),
            (None, None, Some(s)) => Ok(Some(StringMatch::Regex(s))),
            _ => Err(format!("{ONE_OF} may be set, not several")),
        }
    }
}

impl TryFrom<MatchFields> for StringMatch {
    type Error = String;

    fn try_from(fields: MatchFields) -> Result<Self, Self::Error> {
        fields.one()?.ok_or_else(|| format!("{ONE_OF} is required"))
    }
}

impl TryFrom<MatchFields> for PresenceMatch {
    type Error = String;

    fn try_from(fields: MatchFields) -> Result<Self, Self::Error> {
        Ok(fields
            .one()?
            .map_or(PresenceMatch::Present, PresenceMatch::Value))
    }
}

impl From<StringMatch> for MatchFields {
    fn from(m: StringMatch) -> Self {
        match m {
            StringMatch::Exact(s) => MatchFields {
                exact: Some(s),
                ..Default::default()
            },
            StringMatch::Prefix(s) => MatchFields {
                prefix: Some(s),
                ..Default::default()
            },
            StringMatch::Regex(s) => MatchFields {
                regex: Some(s),
                ..Default::default()
            },
        }
    }
}

impl From<PresenceMatch> for MatchFields {
    fn from(m: PresenceMatch) -> Self {
        match m {
            PresenceMatch::Present => MatchFields::default(),
            PresenceMatch::Value(v) => v.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(yaml: &str) -> Result<T, serde_json::Error> {
        let v: serde_json::Value = crate::yaml::from_str(yaml).expect("yaml");
        serde_json::from_value(v)
    }

    #[test]
    fn one_of_is_enforced() {
        assert_eq!(
            parse::<StringMatch>("prefix: /api").expect("prefix"),
            StringMatch::Prefix("/api".into())
        );
        let both = parse::<StringMatch>("{exact: a, prefix: b}").expect_err("two");
        assert!(both.to_string().contains("not several"), "{both}");
        let none = parse::<StringMatch>("{}").expect_err("none");
        assert!(none.to_string().contains("is required"), "{none}");
        let typo = parse::<StringMatch>("{exactly: a}").expect_err("typo");
        assert!(typo.to_string().contains("exactly"), "{typo}");
    }

    #[test]
    fn an_empty_header_match_means_present() {
        assert_eq!(
            parse::<PresenceMatch>("{}").expect("empty"),
            PresenceMatch::Present
        );
        assert_eq!(
            parse::<PresenceMatch>("regex: v[12]").expect("regex"),
            PresenceMatch::Value(StringMatch::Regex("v[12]".into()))
        );
        let back = serde_json::to_value(PresenceMatch::Present).expect("serializes");
        assert_eq!(back, serde_json::json!({}));
    }

    #[test]
    fn string_match_yaml_shape() {
        // Istio kinds are read as YAML into a JSON value first, then typed:
        // a match is a one-key mapping, as Istio writes it.
        let v: serde_json::Value = crate::yaml::from_str("prefix: /api").expect("yaml");
        let m: StringMatch = serde_json::from_value(v).expect("parses");
        assert_eq!(m, StringMatch::Prefix("/api".into()));
    }
}
