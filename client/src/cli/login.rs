//! `harp login URL`: connect this device to a bridge (a Nextcloud with the harpbridge app, or
//! a `harp-bridge`) with Login Flow v2, or with an app password for headless machines.

use std::process::ExitCode;
use std::time::Duration;

use crate::bridge::{self, Credentials};

/// Arguments of `harp login`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The server's base URL (`https://cloud.example.org`).
    pub url: String,
    /// Log in with this user and an app password instead of the browser flow.
    #[arg(long, requires = "app_password")]
    pub user: Option<String>,
    /// The app password (with `--user`). `-` reads it from standard input.
    #[arg(long = "app-password", requires = "user")]
    pub app_password: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `harp login`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let node = super::open_node()?;
    let url = args.url.trim_end_matches('/').to_owned();
    let creds = match (&args.user, &args.app_password) {
        (Some(user), Some(pw)) => {
            let app_password = if pw == "-" {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim().to_owned()
            } else {
                pw.clone()
            };
            Credentials {
                url,
                user: user.clone(),
                app_password,
                log_key: None,
            }
        }
        _ => bridge::login_flow(
            &url,
            |login| {
                // The address alone on standard output, for scripts; the words on standard error.
                eprintln!("Open this address in a browser and grant access to Harp:");
                println!("{login}");
                eprintln!("Waiting for the login (up to 20 minutes)...");
            },
            Duration::from_secs(20 * 60),
        )?,
    };
    let user = bridge::login_with_password(
        &node.dirs,
        &node.device,
        &node.config.device_name,
        creds.clone(),
    )?;
    if args.json {
        super::print_json(&serde_json::json!({
            "url": creds.url, "user": user, "device_id": node.device_id().to_string(),
        }))?;
    } else {
        println!(
            "Logged in to {} as {user}; this device ({}) is registered.",
            creds.url,
            node.device_id()
        );
        println!(
            "The daemon now publishes its addresses and folders there (restart it if it runs)."
        );
    }
    Ok(ExitCode::SUCCESS)
}
