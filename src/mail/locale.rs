//! Languages: the tags accounts carry and requests ask for.

/// Longest tag kept (RFC 5646 section 4.4.1 advises 35 characters).
const MAX_TAG: usize = 35;

/// A language tag in a canonical case (`de`, `pt-BR`, `zh-Hant-TW`), or
/// `None` if `raw` is not shaped like one: a 2–3 letter language, then
/// subtags of 1–8 letters or digits. `_` is read as `-`.
pub fn parse_locale(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > MAX_TAG {
        return None;
    }
    let mut tag = Vec::new();
    for (index, part) in raw.split(['-', '_']).enumerate() {
        let valid = if index == 0 {
            (2..=3).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphabetic())
        } else {
            (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric())
        };
        if !valid {
            return None;
        }
        tag.push(match (index, part.len()) {
            (0, _) => part.to_ascii_lowercase(),
            (_, 2) if part.chars().all(|c| c.is_ascii_alphabetic()) => part.to_ascii_uppercase(),
            (_, 4) => {
                let mut script = part.to_ascii_lowercase();
                script[..1].make_ascii_uppercase();
                script
            }
            _ => part.to_ascii_lowercase(),
        });
    }
    Some(tag.join("-"))
}

/// The tags of an `Accept-Language` header, most wanted first; `*`,
/// refused (`q=0`) and malformed entries are left out, and at most ten kept.
pub fn accepted_languages(header: &str) -> Vec<String> {
    let mut weighted: Vec<(u16, usize, String)> = header
        .split(',')
        .take(32)
        .enumerate()
        .filter_map(|(position, entry)| {
            let mut parts = entry.split(';');
            let tag = parse_locale(parts.next()?)?;
            let weight = parts
                .filter_map(|parameter| parameter.trim().strip_prefix("q="))
                .next()
                .map_or(Some(1000), quality)?;
            (weight > 0).then_some((weight, position, tag))
        })
        .collect();
    weighted.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    weighted
        .into_iter()
        .take(10)
        .map(|(_, _, tag)| tag)
        .collect()
}

/// `q` in thousandths (RFC 9110 section 12.4.2), or `None` if malformed.
fn quality(raw: &str) -> Option<u16> {
    let value: f32 = raw.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

/// Whose language a message is written in: the account's, else the
/// request's, else English.
#[derive(Debug, Clone, Default)]
pub struct LocalePreference {
    pub account: Option<String>,
    pub accepted: Vec<String>,
}

impl LocalePreference {
    /// Tags to try, best first: each, then its language alone.
    pub fn candidates(&self) -> impl Iterator<Item = String> + '_ {
        self.account
            .iter()
            .chain(self.accepted.iter())
            .flat_map(|tag| {
                let language = tag.split('-').next().unwrap_or_default().to_owned();
                [tag.clone(), language]
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_checked_and_put_in_canonical_case() {
        assert_eq!(parse_locale("de").as_deref(), Some("de"));
        assert_eq!(parse_locale("pt_br").as_deref(), Some("pt-BR"));
        assert_eq!(parse_locale("ZH-hant-tw").as_deref(), Some("zh-Hant-TW"));
        assert_eq!(parse_locale("es-419").as_deref(), Some("es-419"));
        for bad in ["", "e", "english", "de-", "de--AT", "../etc", "de/AT", "*"] {
            assert_eq!(parse_locale(bad), None, "{bad}");
        }
        assert_eq!(parse_locale(&"a".repeat(40)), None);
    }

    #[test]
    fn accept_language_is_ordered_by_weight_then_position() {
        assert_eq!(
            accepted_languages("fr;q=0.5, de-AT, en;q=0.8, *;q=0.1, it;q=0"),
            ["de-AT", "en", "fr"]
        );
        assert_eq!(accepted_languages("nonsense;;q=x"), Vec::<String>::new());
        assert_eq!(accepted_languages("de;q=2"), Vec::<String>::new());
    }

    #[test]
    fn the_account_language_comes_before_the_request_and_regions_fall_back() {
        let preference = LocalePreference {
            account: Some("de-AT".to_owned()),
            accepted: vec!["fr".to_owned()],
        };
        let candidates: Vec<String> = preference.candidates().collect();
        assert_eq!(candidates, ["de-AT", "de", "fr", "fr"]);
    }
}
