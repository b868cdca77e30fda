//! Passwords, after NIST SP 800-63B section 3.1.1.2: 8 (configurable) to 128
//! characters counted as Unicode scalar values, no composition rules, no
//! truncation, NFKC before hashing, and no password from the shipped list of
//! common ones (compared case-insensitively).
//!
//! The list is Django's `common-passwords.txt` (BSD licence), lower-cased and
//! sorted bytewise without duplicates (a test checks), so a lookup is a binary
//! search over the embedded text: nothing is built or allocated at start.

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;

use super::text::{Invalid, check_length, reject_control_characters};

pub const PASSWORD_MAX_LENGTH: usize = 128;

const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// The configurable part of the password rules.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_length: usize,
}

/// A password that satisfies the policy, held in its NFKC form. It has no
/// `Debug` that shows it and is wiped from memory when dropped.
pub struct Password(SecretString);

impl Password {
    pub fn parse(raw: &SecretString, policy: PasswordPolicy) -> Result<Self, Invalid> {
        let raw = raw.expose_secret();
        reject_control_characters(raw)?;
        let normalized = normalize_password(raw);
        let text = normalized.expose_secret();
        check_length(text, policy.min_length, PASSWORD_MAX_LENGTH)?;
        if is_common(text) {
            return Err(Invalid::new(
                "password_common",
                "is one of the most commonly used passwords; choose another",
            ));
        }
        Ok(Self(normalized))
    }

    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Password([REDACTED])")
    }
}

/// NFKC, the form passwords are hashed and verified in.
pub fn normalize_password(raw: &str) -> SecretString {
    SecretString::from(raw.nfkc().collect::<String>())
}

fn is_common(password: &str) -> bool {
    sorted_lines_contain(COMMON_PASSWORDS, &password.to_lowercase())
}

/// Whether `wanted` is a whole line of `text`, whose lines are sorted
/// bytewise. Binary search over byte offsets: `low` and `high` always sit at
/// line starts, and each step looks at the line around the middle.
fn sorted_lines_contain(text: &str, wanted: &str) -> bool {
    let bytes = text.as_bytes();
    let (mut low, mut high) = (0, bytes.len());
    while low < high {
        let middle = low + (high - low) / 2;
        let start = bytes[low..middle]
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(low, |newline| low + newline + 1);
        let end = bytes[start..high]
            .iter()
            .position(|&byte| byte == b'\n')
            .map_or(high, |newline| start + newline);
        match text[start..end].cmp(wanted) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => low = (end + 1).min(high),
            std::cmp::Ordering::Greater => high = start,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const POLICY: PasswordPolicy = PasswordPolicy { min_length: 8 };

    fn parse(raw: &str) -> Result<Password, Invalid> {
        Password::parse(&SecretString::from(raw), POLICY)
    }

    #[test]
    fn the_list_is_large_lower_case_sorted_and_without_duplicates() {
        let lines: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert!(lines.len() >= 10_000);
        assert!(lines.iter().all(|line| *line == line.to_lowercase()));
        assert!(lines.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn every_listed_password_is_found_and_near_misses_are_not() {
        let listed: std::collections::HashSet<&str> = COMMON_PASSWORDS.lines().collect();
        for line in &listed {
            assert!(sorted_lines_contain(COMMON_PASSWORDS, line), "{line}");
            for near in [
                format!("{line}~"),
                format!(" {line}"),
                line.chars().skip(1).collect(),
            ] {
                assert_eq!(
                    sorted_lines_contain(COMMON_PASSWORDS, &near),
                    listed.contains(near.as_str()),
                    "{near}"
                );
            }
        }
    }

    #[test]
    fn sorted_line_search_handles_the_edges() {
        for text in ["b\nd\nf", "b\nd\nf\n"] {
            for (wanted, found) in [("a", false), ("b", true), ("c", false), ("d", true)] {
                assert_eq!(sorted_lines_contain(text, wanted), found, "{wanted}");
            }
            for (wanted, found) in [("e", false), ("f", true), ("g", false), ("", false)] {
                assert_eq!(sorted_lines_contain(text, wanted), found, "{wanted}");
            }
        }
        assert!(!sorted_lines_contain("", "a"));
    }

    #[test]
    fn counts_characters_not_bytes() {
        // Eight characters, sixteen bytes.
        assert!(parse("ééééééé1").is_ok());
        assert_eq!(parse("ééééé1").unwrap_err().kind, "string_too_short");
    }

    #[test]
    fn refuses_too_long_without_truncating() {
        let long = "Correct horse battery staple ".repeat(5);
        assert_eq!(parse(&long).unwrap_err().kind, "string_too_long");
        assert!(parse(&long[..128]).is_ok());
    }

    #[test]
    fn refuses_common_passwords_in_any_case() {
        assert_eq!(parse("password1").unwrap_err().kind, "password_common");
        assert_eq!(parse("PassWord1").unwrap_err().kind, "password_common");
        assert_eq!(parse("Qwertyuiop").unwrap_err().kind, "password_common");
    }

    #[test]
    fn has_no_composition_rules_and_allows_spaces() {
        assert!(parse("all lower case words").is_ok());
    }

    #[test]
    fn refuses_control_characters() {
        assert_eq!(parse("abc\0defghij").unwrap_err().kind, "control_character");
    }

    #[test]
    fn applies_nfkc() {
        let password = parse("ｆｕｌｌｗｉｄｔｈ-pass").unwrap();
        assert_eq!(password.expose_secret(), "fullwidth-pass");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = parse("a very secret phrase").unwrap();
        assert!(!format!("{password:?}").contains("secret"));
    }

    proptest! {
        #[test]
        fn accepted_passwords_keep_the_length_rule(raw in "\\PC{0,140}") {
            if let Ok(password) = parse(&raw) {
                let length = password.expose_secret().chars().count();
                prop_assert!((8..=PASSWORD_MAX_LENGTH).contains(&length));
            }
        }
    }
}
