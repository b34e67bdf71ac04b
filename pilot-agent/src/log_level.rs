//! Envoy's log level flags from Istio's form: `--proxy-log-level
//! info,misc:error` means level `info` with component `misc` at `error`;
//! `--proxy-component-log-level` adds more components.

const LEVELS: [&str; 8] = [
    "trace", "debug", "info", "warning", "warn", "error", "critical", "off",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogLevelError {
    #[error("log level {0:?} is not one of trace, debug, info, warning, error, critical, off")]
    Level(String),
    #[error("{0:?} is not COMPONENT:LEVEL")]
    Component(String),
    #[error("--proxy-log-level {0:?} names more than one level")]
    TwoLevels(String),
}

/// Envoy's `--log-level` and `--component-log-level` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvoyLogLevels {
    pub level: String,
    pub components: Option<String>,
}

fn check_level(l: &str) -> Result<(), LogLevelError> {
    if LEVELS.contains(&l) {
        Ok(())
    } else {
        Err(LogLevelError::Level(l.to_string()))
    }
}

pub fn parse(level: &str, components: Option<&str>) -> Result<EnvoyLogLevels, LogLevelError> {
    let mut base = None;
    let mut scoped = Vec::new();
    let parts = level
        .split(',')
        .chain(components.into_iter().flat_map(|c| c.split(',')))
        .map(str::trim)
        .filter(|p| !p.is_empty());
    for part in parts {
        match part.split_once(':') {
            Some((component, l)) => {
                if component.is_empty() {
                    return Err(LogLevelError::Component(part.to_string()));
                }
                check_level(l)?;
                scoped.push(format!("{component}:{l}"));
            }
            None => {
                check_level(part)?;
                if base.replace(part.to_string()).is_some() {
                    return Err(LogLevelError::TwoLevels(level.to_string()));
                }
            }
        }
    }
    Ok(EnvoyLogLevels {
        level: base.unwrap_or_else(|| "warning".to_string()),
        components: (!scoped.is_empty()).then(|| scoped.join(",")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_split_into_component_levels() {
        assert_eq!(
            parse("info,misc:error", Some("upstream:debug")),
            Ok(EnvoyLogLevels {
                level: "info".into(),
                components: Some("misc:error,upstream:debug".into())
            })
        );
        assert_eq!(
            parse("warning", None),
            Ok(EnvoyLogLevels {
                level: "warning".into(),
                components: None
            })
        );
        assert_eq!(
            parse("misc:error", None).map(|l| l.level),
            Ok("warning".into())
        );
        assert!(matches!(parse("loud", None), Err(LogLevelError::Level(_))));
        assert!(matches!(
            parse("info,misc:loud", None),
            Err(LogLevelError::Level(_))
        ));
        assert!(matches!(
            parse("info,debug", None),
            Err(LogLevelError::TwoLevels(_))
        ));
        assert!(matches!(
            parse(":info", None),
            Err(LogLevelError::Component(_))
        ));
    }
}
