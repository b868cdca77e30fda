//! Email addresses: syntax checked by the `email_address` crate (RFC 5321/5322
//! shape, a dotted domain, no display names), at most 254 characters, unique
//! case-insensitively through their lower-cased form.

use email_address::Options;

use super::text::{Invalid, check_length, reject_control_characters};

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
        Ok(Self {
            display: raw.to_owned(),
            normalized: raw.to_lowercase(),
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
            }
        }
    }
}
