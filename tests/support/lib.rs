//! Support for Harp's end-to-end tests: finding the built `harp` binary and running it in a
//! scratch directory.
//!
//! The tests run real processes. The binary is the one `cargo build --workspace --bins` left
//! next to the test executable (the README test command builds it before running the tests).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// The path of a workspace binary (`harp`, later `harp-bridge`) built in the same profile as
/// the running test.
pub fn binary(name: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(format!(
        "HARP_TEST_BIN_{}",
        name.replace('-', "_").to_uppercase()
    )) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("locating the test executable")?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no profile directory")?;
    let path = profile_dir.join(name);
    if !path.exists() {
        bail!(
            "{} is not built: run `cargo build --workspace --bins` first (./scripts/test does)",
            path.display()
        );
    }
    Ok(path)
}

/// The root of the workspace (for fixtures such as the protocol's golden vectors).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Runs `harp` with `args` and returns its output, with `HOME` and the XDG directories
/// pointed into `home` so a test never touches the user's files.
pub fn harp(home: &Path, args: &[&str]) -> Result<Output> {
    let bin = binary("harp")?;
    Command::new(&bin)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env_remove("RUST_LOG")
        .output()
        .with_context(|| format!("running {}", bin.display()))
}
