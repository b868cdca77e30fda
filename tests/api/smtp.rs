//! A real SMTP server for the tests: `tests/smtp/sink.py`, Python's aiosmtpd,
//! started per test on a port of its own; what it receives is read back here.
//! Its interpreter is `LATCHKEY_TEST_PYTHON` (default `python3`); without
//! aiosmtpd the test fails, saying how to install it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub struct SmtpSink {
    port: u16,
    child: Child,
    stdin: Option<ChildStdin>,
    received: Arc<Mutex<Vec<Value>>>,
}

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct Received(pub Value);

impl Received {
    pub fn to(&self) -> Vec<String> {
        self.0["to"]
            .as_array()
            .map(|to| {
                to.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn subject(&self) -> &str {
        self.0["subject"].as_str().unwrap_or_default()
    }

    pub fn message_id(&self) -> &str {
        self.0["message_id"].as_str().unwrap_or_default()
    }

    pub fn text(&self) -> &str {
        self.0["text"].as_str().expect("a text part")
    }

    pub fn html(&self) -> &str {
        self.0["html"].as_str().expect("an HTML part")
    }

    /// The token of the link to `<base>/<page>?token=` in the text part.
    pub fn token(&self, page: &str) -> String {
        let marker = format!("/{page}?token=");
        let text = self.text();
        let start = text
            .find(&marker)
            .unwrap_or_else(|| panic!("no {page} link in {text}"))
            + marker.len();
        text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }

    /// The six-digit code of a sign-in message.
    pub fn code(&self) -> String {
        let subject = self.subject();
        subject
            .rsplit(' ')
            .next()
            .filter(|code| code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no code in {subject:?}"))
            .to_owned()
    }
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").port()
}

impl SmtpSink {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts the server on `port` and waits until it accepts connections.
    pub fn start_on(port: u16) -> Self {
        let python = std::env::var("LATCHKEY_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp/sink.py");
        let mut child = Command::new(&python)
            .arg(script)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {python} for the SMTP server: {error}"));
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let received = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(value) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if value.get("ready").is_some() || value.get("error").is_some() {
                    let _ = ready_tx.send(value);
                } else {
                    sink.lock().unwrap().push(value);
                }
            }
        });
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the SMTP server starts (is python3 with aiosmtpd installed? see README)");
        assert!(
            ready.get("error").is_none(),
            "the SMTP server cannot start: {}",
            ready["error"]
        );
        Self {
            port,
            child,
            stdin,
            received,
        }
    }

    /// `LATCHKEY_SMTP_URL` for this server (no TLS: a local relay).
    pub fn url(&self) -> String {
        smtp_url(self.port)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .map(Received)
            .collect()
    }

    /// Waits until at least `count` messages have arrived (at most 60 s).
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..600 {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "expected {count} messages, got {}: {:?}",
            self.messages().len(),
            self.messages()
        );
    }

    /// Waits for the `nth` (from 1) message to `recipient`.
    pub async fn wait_for_message_to(&self, recipient: &str, nth: usize) -> Received {
        for _ in 0..600 {
            let mut to_them: Vec<Received> = self
                .messages()
                .into_iter()
                .filter(|message| message.to().iter().any(|to| to == recipient))
                .collect();
            if to_them.len() >= nth {
                return to_them.swap_remove(nth - 1);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no message #{nth} to {recipient}: {:?}", self.messages());
    }

    /// Messages to `recipient` so far.
    pub fn messages_to(&self, recipient: &str) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|message| message.to().iter().any(|to| to == recipient))
            .collect()
    }
}

pub fn smtp_url(port: u16) -> String {
    format!("smtp://127.0.0.1:{port}?tls=none")
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
