//! Pure types that parse client input and keep their invariants. No I/O.
//!
//! Every value here is built by a `parse` function; code that holds one never
//! checks it again. A failed parse says which rule failed in an [`Invalid`].

mod email;
mod password;
mod text;
mod username;

pub use email::{EMAIL_MAX_LENGTH, EmailAddress};
pub use password::{PASSWORD_MAX_LENGTH, Password, PasswordPolicy, normalize_password};
pub use text::Invalid;
pub use username::{USERNAME_MAX_LENGTH, USERNAME_MIN_LENGTH, Username, normalize_login_name};
