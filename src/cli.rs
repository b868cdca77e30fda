//! The command line: `serve` (the default), `migrate`, `check-config` and
//! `import-users`. Every failure ends as one line on stderr and a non-zero exit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::auth::import_origin_users;
use crate::clock::SystemClock;
use crate::config::{Settings, mask_url_password};
use crate::startup::Application;
use crate::store::Store;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about = "A user-authentication API server")]
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
    telemetry::init(&settings);
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
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
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

async fn migrate(settings: Settings) -> CommandResult {
    let store = Store::connect(&settings.database_url, 1).await?;
    store.migrate().await?;
    store.close().await;
    println!("migrations applied");
    Ok(())
}

async fn import_users(settings: Settings, from: String) -> CommandResult {
    let store = Store::connect(&settings.database_url, 2).await?;
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
