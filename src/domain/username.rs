//! Usernames: 3 to 32 letters, digits, `.`, `_` or `-` after NFKC; unique
//! case-insensitively through their normalized (lower-cased) form.

use unicode_normalization::UnicodeNormalization;

use super::text::{Invalid, check_length, reject_control_characters};

pub const USERNAME_MIN_LENGTH: usize = 3;
pub const USERNAME_MAX_LENGTH: usize = 32;

/// A valid username: the display form as typed (after NFKC) and the form compared for uniqueness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    display: String,
    normalized: String,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        reject_control_characters(raw)?;
        let display: String = raw.nfkc().collect();
        check_length(&display, USERNAME_MIN_LENGTH, USERNAME_MAX_LENGTH)?;
        if let Some(bad) = display.chars().find(|c| !is_allowed(*c)) {
            return Err(Invalid::new(
                "username_character",
                format!("may contain only letters, digits, '.', '_' and '-' (found {bad:?})"),
            ));
        }
        let normalized = display.to_lowercase();
        Ok(Self {
            display,
            normalized,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

fn is_allowed(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// The lookup key for a login name, without judging it: login must treat a
/// name that could never be registered like any unknown account.
pub fn normalize_login_name(raw: &str) -> String {
    raw.nfkc().collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_the_display_form_and_lowercases_the_key() {
        let name = Username::parse("Alice_01").unwrap();
        assert_eq!(name.as_str(), "Alice_01");
        assert_eq!(name.normalized(), "alice_01");
    }

    #[test]
    fn applies_nfkc_before_checking() {
        // Fullwidth letters fold to ASCII under NFKC.
        let name = Username::parse("ＡＢＣ").unwrap();
        assert_eq!(name.as_str(), "ABC");
        assert_eq!(name.normalized(), normalize_login_name("ＡＢＣ"));
    }

    #[test]
    fn refuses_bad_lengths_and_characters() {
        assert_eq!(Username::parse("ab").unwrap_err().kind, "string_too_short");
        assert_eq!(
            Username::parse(&"a".repeat(33)).unwrap_err().kind,
            "string_too_long"
        );
        assert_eq!(
            Username::parse("bob smith").unwrap_err().kind,
            "username_character"
        );
        assert_eq!(
            Username::parse("bob@x").unwrap_err().kind,
            "username_character"
        );
        assert_eq!(
            Username::parse("bo\0b").unwrap_err().kind,
            "control_character"
        );
        assert_eq!(
            Username::parse("bo\u{7f}b").unwrap_err().kind,
            "control_character"
        );
    }

    #[test]
    fn accepts_unicode_letters() {
        assert_eq!(
            Username::parse("Zoë.Ünal").unwrap().normalized(),
            "zoë.ünal"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_keeps_its_invariants(raw in "\\PC{0,40}") {
            if let Ok(name) = Username::parse(&raw) {
                let length = name.as_str().chars().count();
                prop_assert!((USERNAME_MIN_LENGTH..=USERNAME_MAX_LENGTH).contains(&length));
                prop_assert!(name.as_str().chars().all(is_allowed));
                prop_assert_eq!(name.normalized(), normalize_login_name(&raw));
            }
        }

        #[test]
        fn every_plain_ascii_name_parses(raw in "[A-Za-z0-9._-]{3,32}") {
            let name = Username::parse(&raw).unwrap();
            prop_assert_eq!(name.as_str(), raw.as_str());
        }
    }
}
