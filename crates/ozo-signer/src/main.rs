//! The `ozo-signer` command: the service, dev mode, and the tools for clients and
//! operators.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod accounts;
mod config;
mod csr_check;
mod serve;
mod slow_clients;

#[derive(Parser)]
#[command(name = "ozo-signer", version, about = "CSR approval and signing service for the OZO platform")]
struct Cli {
    /// TOML configuration file; without it the built-in staging and production
    /// environments are used, with local CAs under ./data.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and the operator pages.
    Serve {
        /// Address and port to listen on [default: the config's listen, or 127.0.0.1:8080].
        #[arg(long, env = "OZO_LISTEN")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Start everything on a developer machine: a private PostgreSQL cluster when
    /// DATABASE_URL is unset, migrations, local CAs, an operator account, and the server.
    Dev {
        /// Address and port to listen on.
        #[arg(long, env = "OZO_LISTEN", default_value = config::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
    },
    /// Apply the database migrations and exit.
    Migrate,
    /// Check CSRs offline, with the same rules as the service.
    Csr {
        #[command(subcommand)]
        command: CsrCommand,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Revoke the certificate of an issued request.
    Revoke {
        /// The id of the request.
        request_id: uuid::Uuid,
        /// The RFC 5280 reason: unspecified, keyCompromise, cACompromise,
        /// affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn or
        /// aACompromise.
        #[arg(long)]
        reason: String,
        /// The operator account on whose behalf the revocation is recorded.
        #[arg(long)]
        operator: String,
    },
    /// Check the event log for auditors.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage invitations, which let an organisation upload CSRs.
    Invitation {
        #[command(subcommand)]
        command: InvitationCommand,
    },
}

#[derive(Subcommand)]
enum InvitationCommand {
    /// Create an invitation and print its code and upload path once.
    Create {
        /// The organisation the requests are for.
        #[arg(long)]
        organisation: String,
        /// The contact at the organisation, usually an e-mail address.
        #[arg(long)]
        contact: String,
        /// An environment the invitation is for. Repeat for several.
        #[arg(long = "environment", required = true)]
        environments: Vec<String>,
        /// Days until the invitation expires.
        #[arg(long, default_value_t = ozo_web::invitations::DEFAULT_VALIDITY_DAYS)]
        days: i64,
    },
    /// List invitations, newest first.
    List,
    /// Withdraw an invitation so that its code no longer works.
    Withdraw { id: uuid::Uuid },
}

#[derive(Subcommand)]
enum CsrCommand {
    /// Validate a CSR file for an environment. Exits 0 when accepted, 1 when rejected,
    /// 2 on a usage error.
    Check {
        /// The environment the CSR is for.
        #[arg(long, short)]
        environment: String,
        /// Print {"accepted", "findings": [{"code", "severity", "message"}]} as JSON.
        #[arg(long)]
        json: bool,
        /// Language of the messages.
        #[arg(long, default_value = "en", value_parser = ["en", "nl"])]
        lang: String,
        /// The CSR in PEM or DER; "-" reads standard input.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from standard input.
    Add {
        name: String,
        /// A role of the account: operator, auditor or admin. Repeat for several.
        #[arg(long = "role", required = true, value_parser = ["operator", "auditor", "admin"])]
        roles: Vec<String>,
        /// Replace the password and roles of an existing account with this name.
        #[arg(long)]
        replace: bool,
    },
    /// List the accounts with their roles, one per line.
    List,
    /// Forget an account's failed sign-ins, lifting a sign-in lock on its name.
    Unlock { name: String },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load the configuration as `serve` would, read every file it names (CA roots, TLS
    /// certificate and key), print a summary and exit 0. It prints the first problem and
    /// exits 2 when the file itself is invalid, or 1 when a file it names is. It contacts
    /// no CA and no database.
    Check,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain of the event log. Exits 0 and prints the number of events and
    /// the head hash when it is intact, or exits 1 naming the first event that breaks it.
    Verify,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for an account and print it once; only its hash is stored.
    Create { name: String },
    /// List API tokens, of one account or of all: id, account, created, state.
    List { name: Option<String> },
    /// Revoke an API token by its id, so that it stops working at once.
    Revoke { id: uuid::Uuid },
}

fn main() -> ExitCode {
    let cli = Cli::parse();

    let config = match &cli.config {
        Some(path) => config::Config::load(path),
        None => Ok(config::Config::builtin()),
    };
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    // The service writes JSON lines for the platform's log collector; the commands a
    // person runs write text.
    let format = match &cli.command {
        Command::Serve { .. } => config.log_format,
        _ => config::LogFormat::Text,
    };
    let format = match std::env::var("OZO_LOG_FORMAT") {
        Ok(value) => match config::LogFormat::parse(&value) {
            Some(format) => format,
            None => {
                eprintln!("error: OZO_LOG_FORMAT is {value:?}; expected json or text");
                return ExitCode::from(2);
            }
        },
        Err(_) => format,
    };
    init_logging(format);

    if let Command::Csr { command: CsrCommand::Check { environment, json, lang, file } } = &cli.command {
        return csr_check::run(&config, environment, *json, lang, file);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { listen } => serve::serve(config, listen).await,
            Command::Dev { listen } => serve::dev(config, listen).await,
            Command::Migrate => serve::migrate_only(&config).await,
            Command::Config { command: ConfigCommand::Check } => serve::check_config(&config).await,
            Command::User { command: UserCommand::Add { name, roles, replace } } => {
                accounts::add_user(&config, &name, &roles, replace).await
            }
            Command::Token { command: TokenCommand::Create { name } } => accounts::create_token(&config, &name).await,
            Command::Token { command: TokenCommand::List { name } } => {
                accounts::list_tokens(&config, name.as_deref()).await
            }
            Command::Token { command: TokenCommand::Revoke { id } } => accounts::revoke_token(&config, id).await,
            Command::User { command: UserCommand::List } => accounts::list_users(&config).await,
            Command::User { command: UserCommand::Unlock { name } } => accounts::unlock_user(&config, &name).await,
            Command::Audit { command: AuditCommand::Verify } => accounts::verify_audit_log(&config).await,
            Command::Revoke { request_id, reason, operator } => {
                serve::revoke(config, request_id, &reason, &operator).await
            }
            Command::Invitation { command } => match command {
                InvitationCommand::Create { organisation, contact, environments, days } => {
                    accounts::create_invitation(&config, organisation, contact, environments, days).await
                }
                InvitationCommand::List => accounts::list_invitations(&config).await,
                InvitationCommand::Withdraw { id } => accounts::withdraw_invitation(&config, id).await,
            },
            Command::Csr { .. } => unreachable!("csr commands run without the async runtime"),
        }
    });

    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: config::LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        config::LogFormat::Json => {
            // Event and span fields go to the top level, each name once, so that every
            // line of a request carries its http.request_id as a plain field.
            registry.with(tracing_flat_json::FlatJsonLayer::new(std::io::stderr)).init();
        }
        config::LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi)).init();
        }
    }
}
