//! Support for Harp's end-to-end tests: finding the built `harp` binary and running it in a
//! scratch directory.
//!
//! The tests run real processes. The binary is the one `cargo build --workspace --bins` left
//! next to the test executable (the README test command builds it before running the tests).

pub mod bridge;

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

/// Runs `harp` like [`harp()`] and returns its stdout, or an error with its stderr when it
/// exits non-zero.
pub fn harp_ok(home: &Path, args: &[&str]) -> Result<String> {
    let out = harp(home, args)?;
    if !out.status.success() {
        bail!("harp {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use harp::config::{Config, Dirs};
use serde_json::{Value, json};

/// The state directories of a test home (as `harp` derives them from the XDG variables
/// [`harp()`] sets).
pub fn dirs(home: &Path) -> Dirs {
    Dirs {
        config: home.join("config/harp"),
        data: home.join("data/harp"),
    }
}

/// Runs `harp init` in `home` and returns the new device id.
pub fn init_device(home: &Path) -> Result<String> {
    std::fs::create_dir_all(home)?;
    let out = harp(home, &["init", "--json"])?;
    if !out.status.success() {
        bail!("harp init failed: {out:?}");
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    v["device_id"]
        .as_str()
        .map(str::to_owned)
        .context("harp init --json printed no device_id")
}

/// Changes a test home's `config.toml`.
pub fn edit_config(home: &Path, f: impl FnOnce(&mut Config)) -> Result<()> {
    let d = dirs(home);
    let mut c = Config::load(&d)?;
    f(&mut c);
    c.save(&d)?;
    Ok(())
}

/// One request to the daemon running for `home`.
pub fn control(home: &Path, req: &Value) -> Result<Value> {
    harp::daemon::request(&dirs(home).control_socket(), req)
}

/// The daemon's entry for a peer device, if connected.
pub fn peer_entry(home: &Path, device: &str) -> Result<Option<Value>> {
    let v = control(home, &json!({"cmd": "peers"}))?;
    Ok(v["peers"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["device"] == json!(device)).cloned()))
}

/// Polls `f` every 100 ms for up to `secs`; how long it took, or `None`.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Deterministic pseudo-random bytes.
pub fn fill(seed: &[u8], len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed)
        .finalize_xof()
        .fill(&mut v);
    v
}

/// A long-running `harp` process (daemon, relay), killed when dropped, whatever happens;
/// its stdout lines can be waited for.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `harp ARGS` for `home`, inside `wrapper` (e.g. `ip netns exec NS`) if not empty.
    /// Daemon logs go to the test's stderr, filtered by `HARP_TEST_LOG` (default: warnings).
    pub fn start(wrapper: &[&str], home: &Path, args: &[&str]) -> Result<Self> {
        Self::start_with_env(wrapper, home, args, &[])
    }

    /// [`Proc::start`] with extra environment variables.
    pub fn start_with_env(
        wrapper: &[&str],
        home: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let bin = binary("harp")?;
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let mut child = cmd
            .args(args)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env(
                "RUST_LOG",
                std::env::var("HARP_TEST_LOG").unwrap_or_else(|_| "warn,libp2p_kad=error".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let out = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out)
                .lines()
                .map_while(std::result::Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL: no clean-up runs) and reaps it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The lines printed until one contains `marker` (within 30 s).
    pub fn until(&self, marker: &str) -> Result<Vec<String>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                bail!("no {marker:?} in {seen:?}");
            };
            let done = line.contains(marker);
            seen.push(line);
            if done {
                return Ok(seen);
            }
        }
    }
}

/// Every file, link and directory under `root` except `.harp`, with contents (a link as
/// `-> target`, a directory as an empty value under `name/`).
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.map_while(std::result::Result::ok) {
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if rel == ".harp" {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_symlink() {
                let t = std::fs::read_link(&path).unwrap_or_default();
                out.insert(rel, format!("-> {}", t.display()).into_bytes());
            } else if ft.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &path, out);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A device for the sync tests: its home, id and synced folder (`home/sync`, not created).
#[derive(Debug, Clone)]
pub struct Side {
    /// Its home (`HOME` and the XDG directories of its `harp` runs).
    pub home: PathBuf,
    /// Its device id.
    pub id: String,
    /// The folder it syncs.
    pub folder: PathBuf,
}

impl Side {
    /// A new device under `tmp/name`, listening on loopback QUIC only, without mDNS (so
    /// peers meet only the way a test arranges), its watcher quick to react.
    pub fn new(tmp: &Path, name: &str) -> Result<Self> {
        let home = tmp.join(name);
        std::fs::create_dir_all(&home)?;
        let id = init_device(&home)?;
        edit_config(&home, |c| {
            c.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".to_owned()];
            c.mdns = false;
            c.watch_delay_ms = 200;
            // Each test daemon's web UI on a port of its own.
            c.web_listen = "127.0.0.1:0".to_owned();
        })?;
        Ok(Self {
            folder: home.join("sync"),
            home,
            id,
        })
    }

    /// Runs `harp ARGS` for this device; its stdout, or an error with its stderr.
    pub fn harp(&self, args: &[&str]) -> Result<String> {
        harp_ok(&self.home, args)
    }

    /// Adds its folder (`folder`) under `label`; the folder's id.
    pub fn add_folder(&self, label: &str) -> Result<String> {
        let path = self.folder.to_str().context("a non-UTF-8 temp path")?;
        let out = self.harp(&["folder", "add", path, "--label", label, "--json"])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        Ok(v["id"]
            .as_str()
            .context("folder add printed no id")?
            .to_owned())
    }

    /// Joins the folder of `invite` (`harp folder share` output) into `folder`, reaching the
    /// sharer at `peer_addr`.
    pub fn join(&self, invite: &str, peer_addr: &str) -> Result<String> {
        let path = self.folder.to_str().context("a non-UTF-8 temp path")?;
        self.harp(&[
            "folder",
            "join",
            invite.trim(),
            path,
            "--peer-addr",
            peer_addr,
        ])
    }

    /// Starts its daemon and waits until it is ready; returns it and its first address.
    pub fn start(&self) -> Result<(Proc, String)> {
        let p = Proc::start(&[], &self.home, &["daemon"])?;
        let lines = p.until("daemon ready")?;
        let addr = lines
            .iter()
            .find_map(|l| l.strip_prefix("listening on "))
            .context("the daemon printed no address")?
            .to_owned();
        Ok((p, addr))
    }
}

/// Two devices under `tmp`: A adds the folder `shared` and shares it with B by invitation; B
/// joins knowing A's address. Returns both and their running daemons.
pub fn pair(tmp: &Path) -> Result<(Side, Side, Proc, Proc)> {
    let a = Side::new(tmp, "a")?;
    let b = Side::new(tmp, "b")?;
    let (pa, pb) = connect(&a, &b)?;
    Ok((a, b, pa, pb))
}

/// What [`pair`] does with two devices made beforehand (their folders where the test wants
/// them): A shares its folder `shared` with B, both daemons start, B joining at A's address.
pub fn connect(a: &Side, b: &Side) -> Result<(Proc, Proc)> {
    a.add_folder("shared")?;
    let invite = harp_ok(&a.home, &["folder", "share", "shared", "--with", &b.id])?;
    let (pa, addr_a) = a.start()?;
    b.join(&invite, &addr_a)?;
    let (pb, _) = b.start()?;
    Ok((pa, pb))
}

/// Whether two folders hold the same tree (see [`tree`]).
pub fn same(a: &Path, b: &Path) -> bool {
    tree(a) == tree(b)
}

/// Waits (60 s) until two folders hold the same tree; panics naming every difference (and,
/// with `HARP_TEST_KEEP=DIR`, keeps both devices' homes there for a post-mortem).
pub fn wait_same(a: &Path, b: &Path, what: &str) {
    if wait_for(60, || same(a, b)).is_none() {
        let (ta, tb) = (tree(a), tree(b));
        let show = |v: Option<&Vec<u8>>| match v {
            None => "missing".to_string(),
            Some(v) if v.len() <= 40 => format!("{:?}", String::from_utf8_lossy(v)),
            Some(v) => format!(
                "{} bytes, blake3 {}",
                v.len(),
                &blake3::hash(v).to_hex()[..12]
            ),
        };
        let differing: Vec<String> = ta
            .keys()
            .chain(tb.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| ta.get(*k) != tb.get(*k))
            .map(|k| format!("{k}: {} | {}", show(ta.get(k)), show(tb.get(k))))
            .collect();
        // For post-mortems: HARP_TEST_KEEP=DIR keeps both devices' homes (index, document).
        if let (Ok(keep), Some(home)) = (
            std::env::var("HARP_TEST_KEEP"),
            a.parent().and_then(Path::parent),
        ) {
            let _ = std::process::Command::new("cp")
                .arg("-a")
                .arg(home)
                .arg(keep)
                .status();
        }
        panic!(
            "{what}: trees differ ({} vs {})\n{}",
            a.display(),
            b.display(),
            differing.join("\n")
        );
    }
}
