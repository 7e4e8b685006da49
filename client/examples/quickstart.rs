//! The quickstart: an embedded bridge and two Harp devices on this machine keep a folder in
//! sync.
//!
//! `cargo run --release -p harp --example quickstart`
//!
//! It starts a metadata bridge inside this process (the `harp-bridge` server on loopback, with
//! one user), sets up two devices (A and B) of that user in a scratch directory and logs both
//! in. A adds a folder; its daemon puts it on the bridge and wraps the folder key for B; B
//! accepts it and finds A through the bridge (no address is typed anywhere). Both daemons run
//! as separate processes talking over libp2p on loopback; sample files are written on both
//! sides and converge; then a conflict (both edit one file while B is offline) keeps both
//! versions; last a version proof of a file on B is verified offline. Every step prints the
//! `harp` command it runs, so you can repeat it by hand. Nothing outside this machine is
//! contacted.
//!
//! The daemons are this same program run as the `harp` command line (the environment variable
//! `HARP_QUICKSTART_AS_CLI` set), so the example needs no separate build of the binary.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const AS_CLI: &str = "HARP_QUICKSTART_AS_CLI";

fn main() -> ExitCode {
    if std::env::var_os(AS_CLI).is_some() {
        return harp::cli::main();
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

struct Device {
    name: &'static str,
    home: PathBuf,
    folder: PathBuf,
}

impl Device {
    fn command(&self, args: &[&str]) -> anyhow::Result<Command> {
        let mut c = Command::new(std::env::current_exe()?);
        c.args(args)
            .env(AS_CLI, "1")
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_DATA_HOME", self.home.join("data"))
            .env("RUST_LOG", "warn,libp2p=error");
        Ok(c)
    }

    /// Runs `harp ARGS` for this device, showing the command, and returns its stdout.
    fn harp(&self, args: &[&str]) -> anyhow::Result<String> {
        println!("  [{}] $ harp {}", self.name, shown(args));
        let out = self.command(args)?.output()?;
        if !out.status.success() {
            bail!(
                "harp {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Starts `harp daemon`; returns it and its first listen address.
    fn daemon(&self) -> anyhow::Result<(Child, String)> {
        println!("  [{}] $ harp daemon &", self.name);
        let mut child = self
            .command(&["daemon"])?
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let out = child.stdout.take().context("daemon stdout")?;
        let mut addr = None;
        for line in BufReader::new(out).lines() {
            let line = line?;
            if let Some(a) = line.strip_prefix("listening on ") {
                addr.get_or_insert_with(|| a.to_owned());
            }
            if line.starts_with("daemon ready") {
                break;
            }
        }
        Ok((child, addr.context("the daemon printed no address")?))
    }
}

fn shown(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.len() > 60 {
                format!("{}…", &a[..40])
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Files under `root` (not `.harp`) with their contents' BLAKE3.
fn tree(root: &Path) -> BTreeMap<String, (u64, blake3::Hash)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, blake3::Hash)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.map_while(Result::ok) {
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
                let t = t.to_string_lossy();
                out.insert(rel, (t.len() as u64, blake3::hash(t.as_bytes())));
            } else if ft.is_dir() {
                walk(root, &path, out);
            } else if let Ok(data) = std::fs::read(&path) {
                out.insert(rel, (data.len() as u64, blake3::hash(&data)));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn wait_converged(a: &Device, b: &Device, what: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut last_line = String::new();
    loop {
        let (ta, tb) = (tree(&a.folder), tree(&b.folder));
        if ta == tb {
            let took = started.elapsed();
            println!(
                "  converged: {} files, {:.1} MiB on each side, in {:.2} s",
                ta.len(),
                ta.values().map(|(n, _)| *n).sum::<u64>() as f64 / (1 << 20) as f64,
                took.as_secs_f64()
            );
            return Ok(took);
        }
        let same = ta.iter().filter(|(k, v)| tb.get(*k) == Some(v)).count();
        let line = format!(
            "  {what}: {same} of {} files identical on both sides",
            ta.len().max(tb.len())
        );
        if line != last_line {
            println!("{line}");
            last_line = line;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("{what}: the folders did not converge in 2 minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the bridge in this process on a free loopback port; returns its URL and an app
/// password of its one user, alice.
fn embedded_bridge(dir: &Path) -> anyhow::Result<(String, String)> {
    let conn = harp_bridge::db::open(&dir.join("bridge.sqlite"))?;
    let bridge = harp_bridge::rules::Bridge::new(conn, harp_bridge::rules::Versioning::Crdt)
        .map_err(|e| anyhow::anyhow!("opening the bridge: {e}"))?;
    let password = bridge
        .add_user("alice")
        .map_err(|e| anyhow::anyhow!("creating the bridge user: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let url = format!("http://{}", listener.local_addr()?);
    std::thread::spawn(move || {
        let served = runtime.block_on(harp_bridge::http::serve(
            harp_bridge::http::App::new(bridge),
            listener,
        ));
        if let Err(e) = served {
            eprintln!("the embedded bridge stopped: {e}");
        }
    });
    Ok((url, password))
}

fn run() -> anyhow::Result<()> {
    let base = std::env::temp_dir().join(format!("harp-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    println!(
        "Harp quickstart: a bridge and two devices on this machine, in {}\n",
        base.display()
    );
    let (bridge_url, app_password) = embedded_bridge(&base)?;
    println!(
        "0. The bridge (harp-bridge, embedded) listens on {bridge_url}; user alice\n   \
         (standalone: harp-bridge user add alice; harp-bridge serve)\n"
    );
    let a = Device {
        name: "A",
        home: base.join("device-a"),
        folder: base.join("device-a/Shared"),
    };
    let b = Device {
        name: "B",
        home: base.join("device-b"),
        folder: base.join("device-b/Shared"),
    };

    println!("1. Set up two devices, each with its own key and config");
    let mut ids = Vec::new();
    for d in [&a, &b] {
        std::fs::create_dir_all(&d.home)?;
        let out = d.harp(&["init", "--name", &format!("device-{}", d.name), "--json"])?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        ids.push(v["device_id"].as_str().context("device id")?.to_owned());
        // Loopback only, no LAN discovery: the quickstart stays on this machine.
        let dirs = harp::config::Dirs {
            config: d.home.join("config/harp"),
            data: d.home.join("data/harp"),
        };
        let mut c = harp::config::Config::load(&dirs)?;
        c.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".to_owned()];
        c.mdns = false;
        c.watch_delay_ms = 200;
        // Each daemon's web UI on a free port (`harp ui` prints it while the daemon runs).
        c.web_listen = "127.0.0.1:0".to_owned();
        c.save(&dirs)?;
    }
    println!("  A is {}\n  B is {}\n", ids[0], ids[1]);

    println!("2. Both log in to the bridge as alice (a Nextcloud with harpbridge works the same)");
    for d in [&a, &b] {
        d.harp(&[
            "login",
            &bridge_url,
            "--user",
            "alice",
            "--app-password",
            &app_password,
        ])?;
    }

    println!("\n   A creates a folder (its daemon puts it on the bridge, the key wrapped for B)");
    let added = a.harp(&[
        "folder",
        "add",
        a.folder.to_str().context("path")?,
        "--label",
        "Shared",
        "--json",
    ])?;
    let folder_id = serde_json::from_str::<serde_json::Value>(&added)?["id"]
        .as_str()
        .context("folder id")?
        .to_owned();

    println!("\n3. Sample files on both sides");
    std::fs::create_dir_all(a.folder.join("notes"))?;
    std::fs::write(
        a.folder.join("notes/todo.txt"),
        "- try Harp\n- share a folder\n",
    )?;
    std::fs::write(a.folder.join("README.txt"), "Written on device A.\n")?;
    let mut big = vec![0u8; 64 << 20];
    blake3::Hasher::new()
        .update(b"quickstart")
        .finalize_xof()
        .fill(&mut big);
    std::fs::write(a.folder.join("video.bin"), &big)?;
    std::os::unix::fs::symlink("notes/todo.txt", a.folder.join("todo-link"))?;
    println!("  A: notes/todo.txt, README.txt, video.bin (64 MiB), todo-link -> notes/todo.txt");

    println!("\n4. Start A's daemon; B accepts the folder from the bridge and starts");
    let (da, _) = a.daemon()?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let accepted = b.harp(&[
            "folder",
            "accept",
            &folder_id,
            b.folder.to_str().context("path")?,
        ]);
        match accepted {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                println!(
                    "  (not yet: {})",
                    e.to_string().lines().last().unwrap_or("")
                );
                std::thread::sleep(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
    std::fs::create_dir_all(&b.folder)?;
    std::fs::write(b.folder.join("from-b.txt"), "Written on device B.\n")?;
    println!("  B: from-b.txt");
    let (db, _) = b.daemon()?;
    wait_converged(&a, &b, "first sync")?;

    println!("\n5. Edits flow both ways: B edits a note, A renames a file");
    std::fs::write(
        b.folder.join("notes/todo.txt"),
        "- try Harp\n- share a folder\n- done on B\n",
    )?;
    std::fs::rename(a.folder.join("README.txt"), a.folder.join("READ-ME.txt"))?;
    wait_converged(&a, &b, "edits")?;

    println!("\n6. A conflict: B goes offline, both edit notes/todo.txt, B comes back");
    stop(db);
    std::fs::write(a.folder.join("notes/todo.txt"), "A's version of the list\n")?;
    std::fs::write(
        b.folder.join("notes/todo.txt"),
        "B's version, written offline\n",
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let (db, _) = b.daemon()?;
    wait_converged(&a, &b, "after the conflict")?;
    println!("  notes/ on both devices now holds:");
    for name in tree(&b.folder).keys().filter(|k| k.starts_with("notes/")) {
        let text = std::fs::read_to_string(b.folder.join(name)).unwrap_or_default();
        println!("    {name}: {:?}", text.trim());
    }
    println!("  (the losing edit is kept beside the file, named after its device and time)");

    println!("\n7. A version proof of notes/todo.txt from B, checked offline");
    let proof = base.join("todo.harpproof");
    b.harp(&[
        "proof",
        b.folder.join("notes/todo.txt").to_str().context("path")?,
        "-o",
        proof.to_str().context("path")?,
    ])?;
    let verdict = b.harp(&["verify", proof.to_str().context("path")?])?;
    println!("  {}", verdict.trim());

    let ui = a.harp(&["ui"])?;
    println!(
        "\n8. While a daemon runs, `harp ui` prints its web UI; A's was {}",
        ui.trim()
    );

    stop(da);
    stop(db);
    println!(
        "\nDone. Both folders are in {}; remove it with rm -rf when you are done looking.",
        base.display()
    );
    Ok(())
}
