//! The command line: `serve` (the default), `migrate`, `check-config` and
//! `import-users`. Every failure ends as one line on stderr and a non-zero exit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::SecretString;

use std::sync::Arc;

use crate::auth::{Actor, Auth, ClientContext, Keyring, NewClient, import_origin_users};
use crate::clock::SystemClock;
use crate::config::{Settings, mask_url_password};
use crate::startup::{Application, build_auth};
use crate::store::Store;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "latchkey",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("LATCHKEY_COMMIT"), ")"),
    about = "A user-authentication API server"
)]
struct Cli {
    /// TOML configuration file; environment variables override it.
    #[arg(long, global = true, env = "LATCHKEY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and print it with secrets masked.
    CheckConfig,
    /// Copy users from the origin service's database (its `users` table).
    ImportUsers {
        /// The origin's database URL, e.g. mysql://root@127.0.0.1:3306/user_auth
        #[arg(long = "from")]
        from: String,
    },
    /// Manage accounts.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Print an account's security events, newest first.
    Audit {
        /// Username or email.
        #[arg(long)]
        user: String,
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Manage token-signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage clients allowed to introspect tokens.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Inspect and re-queue outgoing email.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Manage API keys for the admin API.
    #[command(subcommand, name = "api-keys")]
    ApiKeys(ApiKeysCommand),
    /// Manage roles.
    #[command(subcommand)]
    Roles(RolesCommand),
    /// Manage webhook endpoints.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
}

#[derive(Debug, Subcommand)]
enum WebhooksCommand {
    /// Register an endpoint; its signing secret is printed once.
    Create {
        url: String,
        /// Comma-separated event types (user.created, login.failed, ...).
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
    },
    /// List endpoints: id, url, events, state, last error.
    List,
    /// Delete an endpoint; what it has not received yet is dropped.
    Delete { id: uuid::Uuid },
}

#[derive(Debug, Subcommand)]
enum ApiKeysCommand {
    /// Create a key; it is printed once and stored only hashed.
    Create {
        name: String,
        /// Comma-separated: admin:users, admin:audit, admin:webhooks, admin:keys.
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
    /// List keys: id, name, scopes, created, last used, revoked.
    List,
    /// Revoke a key; it stops working at once.
    Revoke { id: uuid::Uuid },
}

#[derive(Debug, Subcommand)]
enum RolesCommand {
    /// Create a role (`admin` opens the admin API to the accounts holding it).
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// List roles.
    List,
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// List messages, newest first: id, kind, recipient, state, attempts, times, last error.
    List {
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Queue an unsent (failed or waiting) message again, due now, with a fresh 24-hour retry budget.
    Retry { id: uuid::Uuid },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Disable an account (by username or email) and end all its sessions at once.
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// Remove every second factor of an account (TOTP, passkeys, recovery codes), for support.
    MfaReset { name: String },
    /// Set the roles an account holds (comma-separated; each created first).
    SetRoles {
        name: String,
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
    },
    /// List accounts, oldest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new signing key active; earlier keys keep verifying until their tokens expire.
    Rotate,
    /// List signing keys, newest first.
    List,
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Create a client; its secret is printed once and stored only hashed.
    /// Without redirect URIs it is a machine client (client credentials,
    /// introspection); with them, an application signing users in through
    /// `/authorize`.
    Create {
        name: String,
        /// A redirect URI, matched exactly; repeat for several.
        #[arg(long = "redirect-uri", num_args = 1..)]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may send the browser after; repeat for several.
        #[arg(long = "post-logout-redirect-uri", num_args = 1..)]
        post_logout_redirect_uris: Vec<String>,
        /// A browser or native app: no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// One of your own apps: users are not asked for consent.
        #[arg(long)]
        first_party: bool,
        /// A machine client: may get tokens for itself (client credentials).
        #[arg(long)]
        client_credentials: bool,
        /// The scopes it may ask for (default for apps: all of openid,
        /// profile, email, offline_access; for machine clients: the scopes
        /// its tokens carry).
        #[arg(long, num_args = 1.., value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// List clients (never their secrets).
    List,
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        print!("{}", settings.masked());
        return ExitCode::SUCCESS;
    }
    let _telemetry = telemetry::init(&settings.logging);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve | Command::CheckConfig => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::ImportUsers { from } => import_users(settings, from).await,
            Command::Users(command) => users(settings, command).await,
            Command::Audit { user, limit } => audit(settings, &user, limit).await,
            Command::Keys(command) => keys(settings, command).await,
            Command::Clients(command) => clients(settings, command).await,
            Command::Outbox(command) => outbox(settings, command).await,
            Command::ApiKeys(command) => api_keys(settings, command).await,
            Command::Roles(command) => roles(settings, command).await,
            Command::Webhooks(command) => webhooks(settings, command).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", telemetry::error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

type CommandResult = Result<(), Box<dyn std::error::Error>>;

async fn serve(settings: Settings) -> CommandResult {
    let application = Application::build(settings).await?;
    tracing::info!(address = %application.address(), "latchkey is listening");
    application.run().await?;
    Ok(())
}

/// A small pool on the configured database, for commands that need no more.
async fn connect(settings: &Settings, connections: u32) -> Result<Store, crate::store::StoreError> {
    Store::connect(settings.database.url.secret(), connections).await
}

async fn migrate(settings: Settings) -> CommandResult {
    let store = connect(&settings, 1).await?;
    store.migrate().await?;
    store.close().await;
    println!("migrations applied");
    Ok(())
}

async fn import_users(settings: Settings, from: String) -> CommandResult {
    let store = connect(&settings, 2).await?;
    store.migrate().await?;
    let origin = SecretString::from(from);
    let report = import_origin_users(&store, &origin, &SystemClock).await?;
    store.close().await;
    for skipped in &report.skipped {
        println!(
            "skipped origin user id {}: {}",
            skipped.origin_id, skipped.reason
        );
    }
    println!(
        "imported {}, already present {}, skipped {} (from {})",
        report.imported,
        report.already_present,
        report.skipped.len(),
        mask_url_password(secrecy::ExposeSecret::expose_secret(&origin)),
    );
    Ok(())
}

async fn users(settings: Settings, command: UsersCommand) -> CommandResult {
    let auth = build_auth(&settings, Arc::new(SystemClock)).await?;
    match command {
        UsersCommand::Disable { name } => set_disabled(&auth, &name, true).await?,
        UsersCommand::Enable { name } => set_disabled(&auth, &name, false).await?,
        UsersCommand::MfaReset { name } => match auth.reset_factors(&name).await? {
            None => return Err(format!("no account named {name}").into()),
            Some(false) => println!("{name} has no second factor; nothing removed"),
            Some(true) => println!(
                "{name}: every second factor removed and the account told; the password alone signs in"
            ),
        },
        UsersCommand::SetRoles { name, roles } => {
            let (actor, context) = operator();
            let user = auth
                .find_account(&name)
                .await?
                .ok_or_else(|| format!("no account named {name}"))?;
            let user = auth.set_roles(user.id, roles, &actor, &context).await?;
            println!("{name} holds: {}", user.roles.join(","));
        }
        UsersCommand::List { limit } => {
            for user in auth.list_users(limit).await? {
                let state = if user.disabled { "disabled" } else { "enabled" };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    user.id,
                    user.username,
                    user.email,
                    state,
                    user.created_at.to_rfc3339()
                );
            }
        }
    }
    Ok(())
}

async fn set_disabled(auth: &Auth, name: &str, disabled: bool) -> CommandResult {
    if !auth.set_disabled(name, disabled).await? {
        return Err(format!("no account named {name}").into());
    }
    println!(
        "{name} {}",
        if disabled {
            "disabled; its sessions are ended"
        } else {
            "enabled"
        }
    );
    Ok(())
}

async fn keys(settings: Settings, command: KeysCommand) -> CommandResult {
    if settings.tokens.secret_key.is_some() {
        return Err(
            "SECRET_KEY is set: tokens are HS256 with that secret and there are no stored keys"
                .into(),
        );
    }
    let store = connect(&settings, 1).await?;
    store.migrate().await?;
    match command {
        KeysCommand::Rotate => {
            let auth = build_auth(&settings, Arc::new(SystemClock)).await?;
            let kid = auth.rotate_signing_key().await?;
            println!(
                "new signing key {kid} is active; earlier keys verify until their tokens expire"
            );
        }
        KeysCommand::List => {
            for key in Keyring::list(&store).await? {
                let retired = key
                    .retired_at
                    .map(|at| format!("retired {}", at.to_rfc3339()))
                    .unwrap_or_default();
                println!(
                    "{}\t{}\t{}\tcreated {}\t{retired}",
                    key.kid,
                    key.algorithm,
                    key.state,
                    key.created_at.to_rfc3339()
                );
            }
        }
    }
    store.close().await;
    Ok(())
}

async fn outbox(settings: Settings, command: OutboxCommand) -> CommandResult {
    let store = connect(&settings, 1).await?;
    store.migrate().await?;
    match command {
        OutboxCommand::List { limit } => {
            for message in store.list_mail(limit).await? {
                let (state, at) = match (message.sent_at, message.failed_at) {
                    (Some(at), _) => ("sent", at),
                    (None, Some(at)) => ("failed", at),
                    (None, None) => ("waiting", message.due_at),
                };
                println!(
                    "{}\t{}\t{}\t{state} {}\tattempts {}\tqueued {}\t{}",
                    message.id,
                    message.kind,
                    message.recipient,
                    at.to_rfc3339(),
                    message.attempts,
                    message.created_at.to_rfc3339(),
                    message.last_error.as_deref().unwrap_or("-"),
                );
            }
        }
        OutboxCommand::Retry { id } => {
            if !store.retry_mail(id, chrono::Utc::now()).await? {
                return Err(format!("no unsent message {id}").into());
            }
            println!("message {id} is queued again; a running latchkey sends it shortly");
        }
    }
    store.close().await;
    Ok(())
}

fn operator() -> (Actor, ClientContext) {
    let context = ClientContext {
        user_agent: Some("latchkey command line".to_owned()),
        ..ClientContext::default()
    };
    (Actor::Operator, context)
}

async fn api_keys(settings: Settings, command: ApiKeysCommand) -> CommandResult {
    let auth = build_auth(&settings, Arc::new(SystemClock)).await?;
    let (actor, context) = operator();
    match command {
        ApiKeysCommand::Create { name, scopes } => {
            let (record, key) = auth
                .create_api_key(&name, &scopes, &actor, &context)
                .await?;
            println!("id: {}", record.id);
            println!("key: {}", secrecy::ExposeSecret::expose_secret(&key));
            println!("scopes: {}", record.scopes.join(","));
            println!("(the key is shown only now; it is stored hashed)");
        }
        ApiKeysCommand::List => {
            for key in auth.list_api_keys().await? {
                let when = |at: Option<chrono::DateTime<chrono::Utc>>| {
                    at.map_or_else(|| "-".to_owned(), |at| at.to_rfc3339())
                };
                println!(
                    "{}\t{}\t{}\tcreated {}\tlast used {}\trevoked {}",
                    key.id,
                    key.name,
                    key.scopes.join(","),
                    key.created_at.to_rfc3339(),
                    when(key.last_used_at),
                    when(key.revoked_at),
                );
            }
        }
        ApiKeysCommand::Revoke { id } => {
            if !auth.revoke_api_key(id, &actor, &context).await? {
                return Err(format!("no live API key {id}").into());
            }
            println!("API key {id} is revoked");
        }
    }
    Ok(())
}

async fn webhooks(settings: Settings, command: WebhooksCommand) -> CommandResult {
    let auth = build_auth(&settings, Arc::new(SystemClock)).await?;
    let (actor, context) = operator();
    match command {
        WebhooksCommand::Create { url, events } => {
            let created = auth.create_webhook(&url, &events, &actor, &context).await?;
            println!("id: {}", created.endpoint.id);
            println!(
                "secret: {}",
                secrecy::ExposeSecret::expose_secret(&created.secret)
            );
            println!("events: {}", created.endpoint.events.join(","));
            println!("(the secret is shown only now; it is stored sealed)");
        }
        WebhooksCommand::List => {
            for endpoint in auth.list_webhooks().await? {
                let state = match (endpoint.disabled_at, endpoint.failing_since) {
                    (Some(at), _) => format!("disabled {}", at.to_rfc3339()),
                    (None, Some(since)) => format!("failing since {}", since.to_rfc3339()),
                    (None, None) => "healthy".to_owned(),
                };
                println!(
                    "{}\t{}\t{}\t{state}\t{}",
                    endpoint.id,
                    endpoint.url,
                    endpoint.events.join(","),
                    endpoint.last_error.as_deref().unwrap_or("-"),
                );
            }
        }
        WebhooksCommand::Delete { id } => {
            if !auth.delete_webhook(id, &actor, &context).await? {
                return Err(format!("no webhook endpoint {id}").into());
            }
            println!("webhook endpoint {id} is deleted");
        }
    }
    Ok(())
}

async fn roles(settings: Settings, command: RolesCommand) -> CommandResult {
    let auth = build_auth(&settings, Arc::new(SystemClock)).await?;
    let (actor, context) = operator();
    match command {
        RolesCommand::Create { name, description } => {
            auth.create_role(&name, description.as_deref(), &actor, &context)
                .await?;
            println!("role {name} created");
        }
        RolesCommand::List => {
            for role in auth.list_roles().await? {
                println!(
                    "{}\t{}",
                    role.name,
                    role.description.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

async fn clients(settings: Settings, command: ClientsCommand) -> CommandResult {
    let auth = build_auth(&settings, Arc::new(SystemClock)).await?;
    match command {
        ClientsCommand::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            first_party,
            client_credentials,
            scopes,
        } => {
            if public && redirect_uris.is_empty() {
                return Err("a public client needs at least one --redirect-uri".into());
            }
            let new = NewClient {
                name,
                redirect_uris,
                post_logout_redirect_uris,
                public,
                first_party,
                client_credentials,
                scopes: scopes
                    .iter()
                    .flat_map(|scope| scope.split_whitespace())
                    .map(str::to_owned)
                    .collect(),
            };
            let client = auth.create_oidc_client(&new).await?;
            println!("client_id: {}", client.id);
            match &client.secret {
                Some(secret) => {
                    println!(
                        "client_secret: {}",
                        secrecy::ExposeSecret::expose_secret(secret)
                    );
                    println!("(the secret is shown only now; it is stored hashed)");
                }
                None => println!("(a public client: no secret; PKCE is required)"),
            }
        }
        ClientsCommand::List => {
            for client in auth.list_clients().await? {
                let kind = match (client.redirect_uris.is_empty(), client.public) {
                    (true, _) if client.client_credentials => "machine",
                    (true, _) => "introspection",
                    (false, true) => "public",
                    (false, false) => "confidential",
                };
                println!(
                    "{}\t{}\t{kind}{}\t{}\t{}",
                    client.id,
                    client.name,
                    if client.first_party {
                        ",first-party"
                    } else {
                        ""
                    },
                    client.redirect_uris.join(" "),
                    client.scopes.join(" "),
                );
            }
        }
    }
    Ok(())
}

async fn audit(settings: Settings, user: &str, limit: u64) -> CommandResult {
    let auth = build_auth(&settings, Arc::new(SystemClock)).await?;
    let Some(events) = auth.audit_trail(user, limit).await? else {
        return Err(format!("no account named {user}").into());
    };
    for event in events {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            event.at.to_rfc3339(),
            event.event,
            event.outcome,
            event.client_ip.as_deref().unwrap_or("-"),
            event.user_agent.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}
