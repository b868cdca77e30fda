//! The pages' message catalogue: English built in, replaced key by key by
//! the file `LATCHKEY_UI_MESSAGES` names (a translation is a file, not a
//! code change).

use std::collections::HashMap;
use std::path::Path;

const ENGLISH: &str = include_str!("en.toml");

#[derive(Debug)]
pub struct Messages(HashMap<String, String>);

impl Messages {
    pub fn english() -> Self {
        // The built-in file is checked by a test below.
        Self(parse(ENGLISH).unwrap_or_default())
    }

    /// English, with the file's messages in place of the built-in ones. A
    /// key the English catalogue does not have is refused (a typo would
    /// otherwise go unnoticed).
    pub fn load(path: Option<&Path>) -> Result<Self, String> {
        let mut messages = Self::english();
        let Some(path) = path else {
            return Ok(messages);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        let replacements = parse(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        for (key, value) in replacements {
            if !messages.0.contains_key(&key) {
                return Err(format!("{}: unknown message key {key}", path.display()));
            }
            messages.0.insert(key, value);
        }
        Ok(messages)
    }

    /// The message for `key`; the key itself if there is none (a bug, seen at once).
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.0.get(key).map_or(key, String::as_str)
    }
}

fn parse(text: &str) -> Result<HashMap<String, String>, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|error: toml::de::Error| error.message().to_owned())?;
    table
        .into_iter()
        .map(|(key, value)| match value {
            toml::Value::String(text) => Ok((key, text)),
            _ => Err(format!("{key} must be a string")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_english_catalogue_parses_and_a_file_replaces_keys() {
        assert!(parse(ENGLISH).is_ok());
        let english = Messages::english();
        assert_eq!(english.get("sign_in_title"), "Sign in");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("de.toml");
        std::fs::write(&path, "lang = \"de\"\nsign_in_title = \"Anmelden\"\n").unwrap();
        let german = Messages::load(Some(&path)).unwrap();
        assert_eq!(german.get("sign_in_title"), "Anmelden");
        assert_eq!(german.get("password"), "Password");
        std::fs::write(&path, "sign_in_titel = \"Anmelden\"\n").unwrap();
        assert!(
            Messages::load(Some(&path))
                .unwrap_err()
                .contains("unknown message key")
        );
    }
}
