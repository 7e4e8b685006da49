//! The `harp-bridge` command: serve the bridge, manage its users, inspect what it stores.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use harp_bridge::{db, http, rules};
use rules::{Bridge, Versioning};

/// The standalone Harp metadata bridge (the API of the harpbridge Nextcloud app).
#[derive(Parser)]
#[command(name = "harp-bridge", version)]
struct Cli {
    /// The database file (default: `$HARP_BRIDGE_DB`, else `harp-bridge.sqlite`).
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8780")]
        listen: String,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Read or set a setting: `versioning` (`crdt` or `server_authoritative`, for folders
    /// created afterwards), `log-name` (the key name checkpoints are signed under; say the
    /// host people know the bridge by).
    Config {
        /// The setting.
        key: String,
        /// The new value; omitted: print the current one.
        value: Option<String>,
    },
    /// Counts of what the bridge stores.
    Status,
    /// Registered devices, of every user or of one.
    Devices {
        /// Only this user's.
        user: Option<String>,
    },
    /// Check a file's chain as stored (links, seqs, signatures; not the genesis).
    Verify {
        /// A member of the folder.
        user: String,
        /// The folder id.
        folder: String,
        /// A path from the plaintext index, or a file id.
        path: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; prints their first app password.
    Add {
        /// The user id.
        name: String,
    },
    /// Make another app password for a user (one per device is good practice).
    Password {
        /// The user id.
        name: String,
    },
}

fn versioning(conn: &rusqlite::Connection) -> Result<Versioning> {
    use rusqlite::OptionalExtension;
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = 'versioning'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.as_deref()
        .and_then(Versioning::parse)
        .unwrap_or(Versioning::Crdt))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let path = cli
        .db
        .clone()
        .or_else(|| std::env::var_os("HARP_BRIDGE_DB").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("harp-bridge.sqlite"));
    let conn = db::open(&path).with_context(|| format!("opening {}", path.display()))?;
    if let Command::Config { key, value } = &cli.command {
        match (key.as_str(), value) {
            ("versioning", None) => println!("{}", versioning(&conn)?.name()),
            ("versioning", Some(v)) => {
                let v = Versioning::parse(v)
                    .with_context(|| format!("{v:?}: expected crdt or server_authoritative"))?;
                conn.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES ('versioning', ?1)",
                    [v.name()],
                )?;
                println!("versioning = {}", v.name());
            }
            ("log-name", None) => {
                let name: Option<String> = conn
                    .query_row(
                        "SELECT value FROM settings WHERE key = 'log_name'",
                        [],
                        |r| r.get(0),
                    )
                    .ok();
                println!("{}", name.as_deref().unwrap_or("harp-bridge"));
            }
            ("log-name", Some(name)) => {
                if name.is_empty()
                    || name.contains(['+', ' '])
                    || name.chars().any(char::is_control)
                {
                    bail!("{name:?}: a key name has no spaces, '+' or control characters");
                }
                conn.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES ('log_name', ?1)",
                    [name],
                )?;
                println!("log-name = {name} (checkpoints are signed under this name from now on)");
            }
            _ => bail!("unknown setting {key:?} (known: versioning, log-name)"),
        }
        return Ok(());
    }
    let mode = versioning(&conn)?;
    let bridge = Bridge::new(conn, mode).map_err(|e| anyhow::anyhow!("opening the bridge: {e}"))?;
    let fail = |e: rules::Failure| anyhow::anyhow!("{e}");
    match cli.command {
        Command::Serve { listen } => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                println!("harp-bridge listening on http://{}", listener.local_addr()?);
                http::serve(http::App::new(bridge), listener).await?;
                anyhow::Ok(())
            })?;
        }
        Command::User { command } => match command {
            UserCommand::Add { name } => println!("{}", bridge.add_user(&name).map_err(fail)?),
            UserCommand::Password { name } => {
                println!("{}", bridge.add_app_password(&name, "cli").map_err(fail)?);
            }
        },
        Command::Config { .. } => {}
        Command::Status => println!(
            "{}",
            serde_json::to_string_pretty(&bridge.status().map_err(fail)?)?
        ),
        Command::Devices { user } => {
            for d in bridge.all_devices(user.as_deref()).map_err(fail)? {
                println!(
                    "{}  {}  {}  {}",
                    d.user,
                    d.device_id,
                    d.name,
                    d.addresses.join(" ")
                );
            }
        }
        Command::Verify { user, folder, path } => {
            let r = bridge.verify_file(&user, &folder, &path).map_err(fail)?;
            println!(
                "ok: {} entries of file {}, last seq {}, {} tip(s): {}",
                r.entries,
                r.file_id,
                r.last_seq,
                r.tips.len(),
                r.tips.join(" ")
            );
        }
    }
    Ok(())
}
