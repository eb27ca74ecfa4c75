//! Building [`Settings`] from its layers.

use std::path::Path;

use toml::{Table, Value};

use super::Settings;

const ENV_PREFIX: &str = "PRAMAAN__";

/// A setting that is wrong; `Display` names the key (or file) first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// Loads settings from the defaults, the optional TOML file and the `PRAMAAN__…` entries of
/// `env` (passed in, not read from the process, so tests can run side by side), then
/// validates them.
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let mut tree = match file {
        Some(path) => read_file(path)?,
        None => Table::new(),
    };
    let defaults =
        Value::try_from(Settings::default()).map_err(|e| ConfigError::new("defaults", e.to_string()))?;
    let mut vars: Vec<(String, String)> =
        env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)).collect();
    vars.sort();
    // X and X_FILE together: which one wins would be an accident of ordering.
    if let Some((k, _)) =
        vars.iter().find(|(k, _)| vars.iter().any(|(other, _)| *other == format!("{k}_FILE")))
    {
        return Err(ConfigError::new(k, format!("both {k} and {k}_FILE are set; keep one")));
    }
    for (name, raw) in vars {
        apply_env(&mut tree, &defaults, &name, raw)?;
    }
    let settings: Settings = serde_path_to_error::deserialize(Value::Table(tree)).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." || path.is_empty() { "settings".to_owned() } else { path };
        ConfigError::new(key, e.into_inner().to_string())
    })?;
    settings.validate()?;
    Ok(settings)
}

fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::new(&shown, format!("cannot read: {e}")))?;
    text.parse::<Table>()
        .map_err(|e| ConfigError::new(&shown, format!("not valid TOML: {}", e.to_string().trim())))
}

/// Applies one `PRAMAAN__A__B=value` (or `PRAMAAN__A__B_FILE=path`) to the tree. (Hence no
/// setting's own name may end in `_file`: paths are named like `tls_certificate`.) The value is
/// parsed as the type the default has at that key (number, boolean), and kept as a string
/// where the default is a string or absent — so a password like `123` stays a string.
fn apply_env(tree: &mut Table, defaults: &Value, name: &str, raw: String) -> Result<(), ConfigError> {
    let mut path: Vec<String> = name[ENV_PREFIX.len()..].split("__").map(str::to_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::new(name, "is not of the form PRAMAAN__SECTION__KEY"));
    }
    let mut raw = raw;
    if let Some(last) = path.last_mut()
        && let Some(stripped) = last.strip_suffix("_file")
    {
        let stripped = stripped.to_owned();
        raw = std::fs::read_to_string(&raw)
            .map_err(|e| ConfigError::new(name, format!("cannot read {raw}: {e}")))?
            .trim_end_matches(['\n', '\r'])
            .to_owned();
        *last = stripped;
    }
    let default_at = path.iter().try_fold(defaults, |v, k| v.get(k));
    let value = match default_at {
        Some(Value::Integer(_)) => Value::Integer(
            raw.trim()
                .parse()
                .map_err(|_| ConfigError::new(name, format!("expected a whole number, got '{raw}'")))?,
        ),
        Some(Value::Float(_)) => Value::Float(
            raw.trim()
                .parse()
                .map_err(|_| ConfigError::new(name, format!("expected a number, got '{raw}'")))?,
        ),
        Some(Value::Boolean(_)) => Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(ConfigError::new(name, format!("expected true or false, got '{raw}'"))),
        }),
        // Lists come comma-separated: PRAMAAN__HTTP__TRUSTED_PROXIES=10.0.0.1,10.0.0.2
        Some(Value::Array(_)) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        _ => Value::String(raw),
    };
    let (leaf, sections) = path.split_last().ok_or_else(|| ConfigError::new(name, "names no setting"))?;
    let mut node = tree;
    for (i, section) in sections.iter().enumerate() {
        let entry = node.entry(section.clone()).or_insert_with(|| Value::Table(Table::new()));
        node = match entry {
            Value::Table(t) => t,
            _ => {
                return Err(ConfigError::new(
                    name,
                    format!("'{}' is a value, not a section", sections[..=i].join(".")),
                ));
            }
        };
    }
    node.insert(leaf.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests;
