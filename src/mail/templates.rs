//! Message templates: one file per message kind and language,
//! `<locale>/<kind>.jinja`, with three blocks: `subject`, `text` and
//! `html`. English is built in; a folder (`LATCHKEY_MAIL_TEMPLATES`) adds
//! languages and replaces built-in files, read once at start, where every
//! template is compiled and rendered once so a broken one stops the start
//! rather than a message.
//!
//! Each file is compiled twice: as `<name>.txt` (no escaping) for the
//! subject and text, and as `<name>.html` (HTML escaping) for the HTML part,
//! so values such as usernames are escaped in HTML whatever the template
//! does. A template may extend the layout of its language (`{% extends
//! layout %}`; English's when its language has none).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use super::locale::{LocalePreference, parse_locale};
use super::{Facts, Letter, MailError, MessageKind};

const FALLBACK: &str = "en";
const LAYOUT: &str = "_layout";

const BUILT_IN: [(&str, &str); 9] = [
    ("en/_layout", include_str!("templates/en/_layout.jinja")),
    (
        "en/verify_email",
        include_str!("templates/en/verify_email.jinja"),
    ),
    (
        "en/reset_password",
        include_str!("templates/en/reset_password.jinja"),
    ),
    (
        "en/confirm_email_change",
        include_str!("templates/en/confirm_email_change.jinja"),
    ),
    (
        "en/email_change_requested",
        include_str!("templates/en/email_change_requested.jinja"),
    ),
    (
        "en/email_changed",
        include_str!("templates/en/email_changed.jinja"),
    ),
    (
        "en/password_changed",
        include_str!("templates/en/password_changed.jinja"),
    ),
    ("en/sign_in", include_str!("templates/en/sign_in.jinja")),
    (
        "en/security_notice",
        include_str!("templates/en/security_notice.jinja"),
    ),
];

pub struct Templates {
    environment: Environment<'static>,
    /// `<locale>/<kind>` of every template there is.
    names: BTreeSet<String>,
}

/// What a template sees: the facts, the product, the language and its layout.
#[derive(Serialize)]
struct Context<'a> {
    #[serde(flatten)]
    facts: &'a Facts,
    product: &'a str,
    locale: &'a str,
    layout: String,
}

impl Templates {
    /// The built-in templates, overridden and extended by `folder`'s.
    pub fn load(folder: Option<&Path>) -> Result<Self, MailError> {
        let mut sources: BTreeMap<String, String> = BUILT_IN
            .iter()
            .map(|(name, source)| ((*name).to_owned(), (*source).to_owned()))
            .collect();
        if let Some(folder) = folder {
            read_folder(folder, &mut sources)?;
        }
        let mut environment = Environment::new();
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        environment.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        for (name, source) in &sources {
            for variant in ["txt", "html"] {
                let full = format!("{name}.{variant}");
                environment
                    .add_template_owned(full.clone(), source.clone())
                    .map_err(|source| MailError::Template { name: full, source })?;
            }
        }
        let templates = Self {
            environment,
            names: sources.into_keys().collect(),
        };
        templates.try_each()?;
        Ok(templates)
    }

    /// Renders every message in every language once, with sample facts.
    fn try_each(&self) -> Result<(), MailError> {
        let sample = Facts {
            username: "sample".to_owned(),
            email: "sample@example.com".to_owned(),
            link: Some("https://example.com/page?token=sample".to_owned()),
            code: Some("123456".to_owned()),
            new_email: Some("new@example.com".to_owned()),
            minutes: Some(10),
            hours: Some(24),
            change: Some("A second factor was added".to_owned()),
        };
        for name in &self.names {
            let Some((locale, kind)) = name.split_once('/') else {
                continue;
            };
            if let Some(kind) = MessageKind::ALL.into_iter().find(|k| k.name() == kind) {
                self.render(locale, kind, "latchkey", &sample)?;
            }
        }
        Ok(())
    }

    fn has(&self, locale: &str, kind: MessageKind) -> bool {
        self.names.contains(&format!("{locale}/{}", kind.name()))
    }

    /// The first candidate language with a template for `kind`, else English.
    pub fn choose(&self, preference: &LocalePreference, kind: MessageKind) -> String {
        preference
            .candidates()
            .find(|locale| self.has(locale, kind))
            .unwrap_or_else(|| FALLBACK.to_owned())
    }

    pub fn render(
        &self,
        locale: &str,
        kind: MessageKind,
        product: &str,
        facts: &Facts,
    ) -> Result<Letter, MailError> {
        let name = format!("{locale}/{}", kind.name());
        let layout_locale = if self.names.contains(&format!("{locale}/{LAYOUT}")) {
            locale
        } else {
            FALLBACK
        };
        let render = |variant: &str, blocks: &[&str]| -> Result<Vec<String>, MailError> {
            let full = format!("{name}.{variant}");
            let failed = |source| MailError::Template {
                name: full.clone(),
                source,
            };
            let context = Context {
                facts,
                product,
                locale,
                layout: format!("{layout_locale}/{LAYOUT}.{variant}"),
            };
            let template = self.environment.get_template(&full).map_err(failed)?;
            let mut captured = template
                .render_captured_to(
                    minijinja::Value::from(minijinja::value::Serde(&context)),
                    std::io::sink(),
                )
                .map_err(failed)?;
            captured.with_state_mut(|state| {
                blocks
                    .iter()
                    .map(|block| state.render_block(block).map_err(failed))
                    .collect()
            })
        };
        let mut text = render("txt", &["subject", "text"])?.into_iter();
        let subject = one_line(&text.next().unwrap_or_default());
        let text = text.next().unwrap_or_default().trim().to_owned() + "\n";
        let html = render("html", &["html"])?
            .pop()
            .unwrap_or_default()
            .trim()
            .to_owned()
            + "\n";
        Ok(Letter {
            subject,
            text,
            html,
        })
    }
}

/// A subject is one line: whitespace runs (newlines included) become one space.
fn one_line(subject: &str) -> String {
    subject.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Adds `<folder>/<locale>/<kind>.jinja` files to `sources`.
fn read_folder(folder: &Path, sources: &mut BTreeMap<String, String>) -> Result<(), MailError> {
    let unreadable = |source| MailError::Folder {
        path: folder.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(folder).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        if !entry.file_type().map_err(unreadable)?.is_dir() {
            continue;
        }
        let directory = entry.file_name().to_string_lossy().into_owned();
        let Some(locale) = parse_locale(&directory).filter(|locale| *locale == directory) else {
            return Err(MailError::Layout(
                folder.display().to_string(),
                format!("{directory:?} is not a language tag in canonical case (like de or pt-BR)"),
            ));
        };
        for file in std::fs::read_dir(entry.path()).map_err(unreadable)? {
            let path = file.map_err(unreadable)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("jinja") {
                continue;
            }
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let known = stem == LAYOUT || MessageKind::ALL.iter().any(|k| k.name() == stem);
            if !known {
                return Err(MailError::Layout(
                    folder.display().to_string(),
                    format!("{locale}/{stem}.jinja is not a message kind latchkey sends"),
                ));
            }
            let source = std::fs::read_to_string(&path).map_err(unreadable)?;
            sources.insert(format!("{locale}/{stem}"), source);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            username: "<b>al&ce</b>".to_owned(),
            email: "alice@example.com".to_owned(),
            link: Some("https://auth.example.com/reset-password?token=abc".to_owned()),
            minutes: Some(60),
            ..Facts::default()
        }
    }

    #[test]
    fn built_in_messages_have_a_subject_a_text_and_an_escaped_html_part() {
        let templates = Templates::load(None).unwrap();
        let letter = templates
            .render("en", MessageKind::ResetPassword, "Acme & Co", &facts())
            .unwrap();
        assert_eq!(letter.subject, "Reset your Acme & Co password");
        assert!(
            letter.text.contains("Hello <b>al&ce</b>,"),
            "{}",
            letter.text
        );
        assert!(
            letter
                .text
                .contains("https://auth.example.com/reset-password?token=abc")
        );
        assert!(letter.text.contains("60 minutes"));
        assert!(
            letter
                .html
                .contains("Hello &lt;b&gt;al&amp;ce&lt;&#x2f;b&gt;,"),
            "{}",
            letter.html
        );
        assert!(letter.html.contains("Acme &amp; Co"), "{}", letter.html);
        assert!(!letter.html.contains("<b>"));
    }

    #[test]
    fn a_folder_adds_languages_and_the_best_available_one_is_chosen() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir(folder.path().join("de")).unwrap();
        std::fs::write(
            folder.path().join("de/reset_password.jinja"),
            "{% block subject %}Passwort für {{ product }}{% endblock %}\
             {% block text %}Hallo {{ username }}: {{ link }}{% endblock %}\
             {% block html %}<p>Hallo {{ username }}</p>{% endblock %}",
        )
        .unwrap();
        let templates = Templates::load(Some(folder.path())).unwrap();
        let german = LocalePreference {
            account: None,
            accepted: vec!["de-CH".to_owned(), "en".to_owned()],
        };
        assert_eq!(templates.choose(&german, MessageKind::ResetPassword), "de");
        // No German verification message: English.
        assert_eq!(templates.choose(&german, MessageKind::VerifyEmail), "en");
        let letter = templates
            .render("de", MessageKind::ResetPassword, "Acme", &facts())
            .unwrap();
        assert_eq!(letter.subject, "Passwort für Acme");
        assert!(letter.html.contains("Hallo &lt;b&gt;"));
    }

    #[test]
    fn a_broken_template_stops_the_start_naming_its_file() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir(folder.path().join("fr")).unwrap();
        std::fs::write(
            folder.path().join("fr/sign_in.jinja"),
            "{% block subject %}{{ cdoe }}{% endblock %}{% block text %}{% endblock %}{% block html %}{% endblock %}",
        )
        .unwrap();
        let error = Templates::load(Some(folder.path())).err().unwrap();
        assert!(error.to_string().contains("fr/sign_in"), "{error}");
        std::fs::write(folder.path().join("fr/unknown.jinja"), "").unwrap();
        std::fs::remove_file(folder.path().join("fr/sign_in.jinja")).unwrap();
        let error = Templates::load(Some(folder.path())).err().unwrap();
        assert!(error.to_string().contains("not a message kind"), "{error}");
    }
}
