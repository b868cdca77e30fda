//! Email addresses: syntax checked by the `email_address` crate (RFC 5321/5322
//! shape, a dotted domain, no display names), at most 254 characters, unique
//! case-insensitively through their lower-cased form.

use email_address::Options;

use super::text::{Invalid, check_length, reject_control_characters};
use super::username::normalize_login_name;

/// The width of the normalized email column.
const NORMALIZED_MAX_LENGTH: usize = 512;

/// RFC 5321's limit on a forward path, less the angle brackets.
pub const EMAIL_MAX_LENGTH: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress {
    display: String,
    normalized: String,
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        reject_control_characters(raw)?;
        check_length(raw, 3, EMAIL_MAX_LENGTH)?;
        let options = Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        email_address::EmailAddress::parse_with_options(raw, options).map_err(|error| {
            Invalid::new(
                "value_error",
                format!("is not a valid email address: {error}"),
            )
        })?;
        // The same key login looks names up by, so every address can log in.
        // NFKC can lengthen text many times over; the key's column holds 512.
        let normalized = normalize_login_name(raw);
        if normalized.chars().count() > NORMALIZED_MAX_LENGTH {
            return Err(Invalid::new(
                "string_too_long",
                format!("is too long once normalized (over {NORMALIZED_MAX_LENGTH} characters)"),
            ));
        }
        Ok(Self {
            display: raw.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_addresses_and_lowercases_the_key() {
        let email = EmailAddress::parse("Alice.Smith+tag@Example.COM").unwrap();
        assert_eq!(email.as_str(), "Alice.Smith+tag@Example.COM");
        assert_eq!(email.normalized(), "alice.smith+tag@example.com");
    }

    #[test]
    fn the_key_is_the_one_login_looks_up() {
        // Fullwidth letters fold to ASCII under NFKC, as login names do.
        let email = EmailAddress::parse("\u{FF21}lice@example.com").unwrap();
        assert_eq!(email.normalized(), "alice@example.com");
    }

    #[test]
    fn refuses_addresses_whose_key_would_overflow_its_column() {
        // U+FDFA is one character that NFKC turns into eighteen.
        let local = "\u{FDFA}".repeat(21);
        let label = "\u{FDFA}".repeat(21);
        let raw = format!("{local}@{label}.{label}.com");
        let error = EmailAddress::parse(&raw).unwrap_err();
        assert_eq!(error.kind, "string_too_long", "{}", error.message);
    }

    #[test]
    fn refuses_what_is_not_an_address() {
        for raw in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "alice@localhost",
            "a b@example.com",
            "Alice <alice@example.com>",
            "alice@[127.0.0.1]",
            "alice@exa\nmple.com",
        ] {
            assert!(EmailAddress::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn refuses_addresses_over_254_characters() {
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(186));
        assert_eq!(long.len(), 255);
        assert_eq!(
            EmailAddress::parse(&long).unwrap_err().kind,
            "string_too_long"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(raw in "\\PC{0,300}") {
            if let Ok(email) = EmailAddress::parse(&raw) {
                prop_assert!(email.as_str().chars().count() <= EMAIL_MAX_LENGTH);
                prop_assert!(email.as_str().contains('@'));
                prop_assert_eq!(email.normalized(), normalize_login_name(&raw));
                prop_assert!(email.normalized().chars().count() <= NORMALIZED_MAX_LENGTH);
            }
        }
    }
}
