//! Rules shared by every text field.

/// Why a value was refused: a stable machine-readable `kind` and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub kind: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// Refuses control characters (NUL included) in any field.
pub(crate) fn reject_control_characters(value: &str) -> Result<(), Invalid> {
    if value.chars().any(char::is_control) {
        return Err(Invalid::new(
            "control_character",
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a length counted in Unicode scalar values.
pub(crate) fn check_length(value: &str, min: usize, max: usize) -> Result<(), Invalid> {
    let length = value.chars().count();
    if length < min {
        return Err(Invalid::new(
            "string_too_short",
            format!("must be at least {min} characters"),
        ));
    }
    if length > max {
        return Err(Invalid::new(
            "string_too_long",
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}
