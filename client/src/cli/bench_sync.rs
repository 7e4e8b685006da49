//! `harp bench sync`: two real daemons on loopback, timed through the scenarios.
//!
//! Devices A and B are set up in a scratch directory exactly as a user would (init, folder
//! add, share, join), each `harp daemon` a separate process (this same binary). Each scenario
//! changes A's folder, then waits until B's folder holds the same bytes, and reports the time
//! from the end of the write to convergence, the bytes both daemons put on the wire (chunk and
//! metadata streams), their CPU seconds (utime + stime from /proc) and their peak RSS (VmHWM).
//! A raw libp2p stream moving the large file's bytes between two nodes in this process is
//! measured in the same round, right before Harp's scenarios, as the reference; the same
//! scenarios run with Syncthing in the same round ([`super::bench_syncthing`]). `--rounds N`
//! repeats the round N times and summarises it ([`super::bench_summary`]): this host's speed
//! drifts by up to 2x within minutes, so one round's ratios can land either side of an aim.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Arguments of `harp bench sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Size of the large file, MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// How many small files (1 to 10 KiB each).
    #[arg(long, default_value_t = 10_000)]
    pub small_files: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Do not run the same scenarios with Syncthing (by default they run when `syncthing` and
    /// `ip` are installed and this runs as root, in a network namespace with only loopback).
    #[arg(long)]
    pub no_syncthing: bool,
    /// Where both devices' homes and folders go (default: the system temp dir), e.g. a
    /// btrfs or XFS mount to measure a file system that shares blocks; removed afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Run the daemons with `early_transfer = false` (a new file moves after its scan), to
    /// measure what early transfer does in one binary.
    #[arg(long)]
    pub no_early: bool,
    /// The daemons' transport (and the raw stream's, the reference). TCP by default: what
    /// daemons on one network use first (`net::in_dial_order`).
    #[arg(long, value_enum, default_value = "tcp")]
    pub transport: super::bench_transfer::Transport,
    /// Run the whole comparison this many times over (fresh devices each time, Syncthing
    /// first in every second round) and summarise each figure by its median: on a host
    /// whose speed drifts, one round's ratios say little.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
}

struct Device {
    home: PathBuf,
    folder: PathBuf,
}

impl Device {
    fn command(&self, args: &[&str]) -> anyhow::Result<Command> {
        let mut c = Command::new(std::env::current_exe()?);
        c.args(args)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_DATA_HOME", self.home.join("data"))
            .env("RUST_LOG", "error");
        Ok(c)
    }

    fn harp(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command(args)?.output()?;
        if !out.status.success() {
            bail!(
                "harp {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    fn daemon(&self) -> anyhow::Result<(Child, String)> {
        // `HARP_BENCH_LOG=DIR` keeps each daemon's log (at info level unless
        // `HARP_BENCH_LOG_LEVEL` says otherwise) in DIR, for finding where the time goes:
        // `a.log` and `b.log`, after the round's scratch directory (`harp-bench-sync-*`).
        let (stderr, level) = match std::env::var_os("HARP_BENCH_LOG") {
            Some(dir) => {
                let name = |p: Option<&Path>| {
                    p.and_then(Path::file_name)
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                let round = name(self.home.parent());
                let path =
                    PathBuf::from(dir).join(format!("{round}-{}.log", name(Some(&self.home))));
                (
                    Stdio::from(std::fs::File::create(path)?),
                    "info,libp2p=warn",
                )
            }
            None => (Stdio::null(), "error"),
        };
        // `HARP_BENCH_LOG_LEVEL` overrides the level of those logs (e.g. `debug`).
        let level = std::env::var("HARP_BENCH_LOG_LEVEL").unwrap_or_else(|_| level.to_owned());
        let mut child = self
            .command(&["daemon"])?
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let out = child.stdout.take().context("daemon stdout")?;
        let mut lines = BufReader::new(out).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line?;
            if let Some(a) = line.strip_prefix("listening on ") {
                addr.get_or_insert_with(|| a.to_owned());
            }
            if line.starts_with("daemon ready") {
                break;
            }
        }
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok((child, addr.context("the daemon printed no address")?))
    }

    fn dirs(&self) -> crate::config::Dirs {
        crate::config::Dirs {
            config: self.home.join("config/harp"),
            data: self.home.join("data/harp"),
        }
    }

    /// Bytes this daemon sent and received, as its control API counts them.
    fn traffic(&self) -> anyhow::Result<u64> {
        let v = crate::daemon::request(&self.dirs().control_socket(), &json!({"cmd": "peers"}))?;
        Ok(v["peers"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        p["bytes_in"].as_u64().unwrap_or(0) + p["bytes_out"].as_u64().unwrap_or(0)
                    })
                    .sum()
            })
            .unwrap_or(0))
    }
}

/// `pid` and all its descendants (a wrapper such as `ip netns exec` may fork).
fn with_children(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.map_while(Result::ok) {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u32>().ok());
            if let Some(pp) = ppid {
                parent_of.push((p, pp));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        out.extend(
            parent_of
                .iter()
                .filter(|(_, pp)| *pp == cur)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

/// CPU seconds (user + system) of a process and its children so far.
fn tree_cpu_seconds(pid: u32) -> f64 {
    with_children(pid).into_iter().map(cpu_seconds).sum()
}

/// The largest peak resident set among a process and its children, bytes.
fn tree_peak_rss(pid: u32) -> u64 {
    with_children(pid)
        .into_iter()
        .map(peak_rss)
        .max()
        .unwrap_or(0)
}

/// CPU seconds (user + system) of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the full line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set of a process, bytes.
fn peak_rss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// B's copy looks like A's file: same size and mtime (an install sets the mtime last, from
/// the record). Cheap, so polling does not steal the daemons' CPU; the bytes are compared
/// once the clock has stopped ([`same_bytes`]).
fn looks_same(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    ma.len() == mb.len() && ma.modified().ok() == mb.modified().ok()
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    let hash = |p: &Path| -> Option<blake3::Hash> {
        let mut h = blake3::Hasher::new();
        let mut f = std::fs::File::open(p).ok()?;
        std::io::copy(&mut f, &mut h).ok()?;
        Some(h.finalize())
    };
    let of_a = hash(a);
    of_a.is_some() && of_a == hash(b)
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).count())
        .unwrap_or(0)
}

/// When B's versions store got the version a scenario replaced, counted from the scenario's
/// start: a small edit of a large file written in place keeps it after the edit shows
/// (`sync::apply::patch`), a file built whole before. Not for Syncthing (no `.harp`).
struct KeptWatch {
    versions: PathBuf,
    before: Option<usize>,
    started: Instant,
    at: Option<f64>,
}

impl KeptWatch {
    fn new(run: &Run<'_>) -> Self {
        let versions = run.b_folder.join(".harp/versions");
        let before = run
            .b_folder
            .join(".harp")
            .is_dir()
            .then(|| count_files(&versions));
        Self {
            versions,
            before,
            started: Instant::now(),
            at: None,
        }
    }

    fn poll(&mut self) {
        if let Some(before) = self.before
            && self.at.is_none()
            && count_files(&self.versions) > before
        {
            self.at = Some(self.started.elapsed().as_secs_f64());
        }
    }

    /// Adds the figure to the last scenario (waiting up to a minute for it).
    fn note(mut self, out: &mut [Value]) {
        if self.before.is_none() {
            return;
        }
        while self.at.is_none() && self.started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(10));
            self.poll();
        }
        if let (Some(at), Some(last)) = (self.at, out.last_mut()) {
            last["previous_version_kept_seconds"] = json!(at);
        }
    }
}

/// One side-by-side subject: two synced folders, the two processes doing it, and how to read
/// the bytes they moved.
pub(super) struct Run<'a> {
    pub(super) a_folder: PathBuf,
    pub(super) b_folder: PathBuf,
    pub(super) pids: [u32; 2],
    pub(super) traffic: &'a dyn Fn() -> anyhow::Result<u64>,
}

impl Run<'_> {
    /// Waits for `done`, then reports the scenario.
    fn measure(&self, name: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<Value> {
        let bytes0 = (self.traffic)()?;
        let cpu0: f64 = self.pids.iter().map(|p| tree_cpu_seconds(*p)).sum();
        let started = Instant::now();
        while !done() {
            if started.elapsed() > Duration::from_secs(900) {
                bail!("{name}: B did not converge in 15 minutes");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let seconds = started.elapsed().as_secs_f64();
        // Let the last metadata session finish before reading the counters.
        std::thread::sleep(Duration::from_millis(300));
        let wire = (self.traffic)()?.saturating_sub(bytes0);
        let cpu: f64 = self.pids.iter().map(|p| tree_cpu_seconds(*p)).sum::<f64>() - cpu0;
        Ok(json!({
            "scenario": name,
            "seconds": seconds,
            "wire_bytes": wire,
            "cpu_seconds": cpu,
            "peak_rss_bytes": self.pids.iter().map(|p| tree_peak_rss(*p)).max(),
            // Each side's own peak: the sender's and the receiver's memory differ in kind.
            "peak_rss_bytes_by_side": self.pids.map(tree_peak_rss),
        }))
    }
}

fn random_fill(seed: &[u8], buf: &mut [u8]) {
    blake3::Hasher::new().update(seed).finalize_xof().fill(buf);
}

/// The type of the file system `path` is on, as `/proc/mounts` names it (the longest mount
/// point that holds it).
fn file_system_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (point, kind) = (f.nth(1)?, f.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "unknown".to_owned(), |(_, kind)| kind)
}

/// Runs the comparison `--rounds` times over; returns the report: every round, and a
/// summary of the rounds ([`super::bench_summary`]).
pub(crate) fn sync(args: &SyncArgs) -> anyhow::Result<Value> {
    let scratch = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let mut rounds = Vec::new();
    for round in 0..args.rounds.max(1) {
        // Syncthing first in every second round: a host that speeds up or slows down over
        // the run then favours neither.
        rounds.push(one_round(args, &scratch, round % 2 == 1)?);
    }
    let size = args.size_mib << 20;
    Ok(json!({
        "machine": crate::cli::bench::machine(),
        "file_system": file_system_of(&scratch),
        "transport": args.transport.name(),
        "early_transfer": !args.no_early,
        "size_bytes": size,
        "small_files": args.small_files,
        "summary": super::bench_summary::summary(&rounds),
        "rounds": rounds,
    }))
}

/// One round: the raw stream (the reference), then Harp's scenarios right after it, and
/// Syncthing's before or after those, each on fresh devices in a scratch directory of its own.
fn one_round(args: &SyncArgs, scratch: &Path, syncthing_first: bool) -> anyhow::Result<Value> {
    let base = tempfile::Builder::new()
        .prefix("harp-bench-sync-")
        .tempdir_in(scratch)?;
    let syncthing = || {
        if args.no_syncthing {
            json!({"skipped": "--no-syncthing"})
        } else {
            super::bench_syncthing::run(args, base.path())
                .unwrap_or_else(|e| json!({"skipped": format!("{e:#}")}))
        }
    };
    let first = syncthing_first.then(|| {
        settle();
        syncthing()
    });
    let size = args.size_mib << 20;
    settle();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let raw_seconds = runtime.block_on(super::bench_transfer::raw_stream(size, args.transport))?;
    drop(runtime);
    let mut scenarios = harp_scenarios(args, base.path())?;
    if let Some(first) = scenarios.first_mut() {
        first["raw_libp2p_stream_seconds"] = json!(raw_seconds);
        first["ratio_to_raw_stream"] =
            json!(first["seconds"].as_f64().unwrap_or(0.0) / raw_seconds.max(1e-9));
    }
    let syncthing = first.unwrap_or_else(|| {
        settle();
        syncthing()
    });
    Ok(json!({
        "syncthing_first": syncthing_first,
        "raw_libp2p_stream_seconds": raw_seconds,
        "raw_libp2p_stream_mb_s": size as f64 / raw_seconds.max(1e-9) / 1e6,
        "scenarios": scenarios,
        "syncthing": syncthing,
    }))
}

/// Writes every dirty page out before a tool's scenarios, so that neither starts while the
/// disk still writes back the other's files (or this run's 1 GiB source file): in the rounds
/// where Syncthing ran first without this, Harp's new file and its insert were the slowest of
/// their runs (B's copy of the unchanged GiB 1.02 s against 0.75-0.85).
fn settle() {
    rustix::fs::sync();
}

/// Two Harp devices set up in `base` as a user would, their daemons started, the scenarios
/// run between them.
fn harp_scenarios(args: &SyncArgs, base: &Path) -> anyhow::Result<Vec<Value>> {
    let a = Device {
        home: base.join("a"),
        folder: base.join("a/Shared"),
    };
    let b = Device {
        home: base.join("b"),
        folder: base.join("b/Shared"),
    };
    let mut ids = Vec::new();
    for d in [&a, &b] {
        std::fs::create_dir_all(&d.home)?;
        let v: Value = serde_json::from_str(&d.harp(&["init", "--json"])?)?;
        ids.push(v["device_id"].as_str().context("device id")?.to_owned());
        let dirs = d.dirs();
        let mut c = crate::config::Config::load(&dirs)?;
        c.listen = vec![args.transport.listen().to_owned()];
        c.mdns = false;
        c.watch_delay_ms = 100;
        c.early_transfer = !args.no_early;
        // No web UI: two daemons would contend for its default port, and no one looks.
        c.web_listen = String::new();
        c.save(&dirs)?;
    }
    a.harp(&[
        "folder",
        "add",
        a.folder.to_str().context("path")?,
        "--label",
        "bench",
    ])?;
    let invite = a.harp(&["folder", "share", "bench", "--with", &ids[1]])?;
    let (mut da, addr) = a.daemon()?;
    b.harp(&[
        "folder",
        "join",
        invite.trim(),
        b.folder.to_str().context("path")?,
        "--peer-addr",
        &addr,
    ])?;
    let (mut db, _) = b.daemon()?;
    let traffic = || a.traffic();
    let run = Run {
        a_folder: a.folder.clone(),
        b_folder: b.folder.clone(),
        pids: [da.id(), db.id()],
        traffic: &traffic,
    };
    let result = scenarios(args, &run);
    let _ = da.kill();
    let _ = db.kill();
    let _ = da.wait();
    let _ = db.wait();
    result
}

/// An edit of A's file: until B's copy looks the same, with when B kept the version it
/// replaced; then the bytes compared.
fn measure_edit(
    run: &Run<'_>,
    name: &str,
    a: &Path,
    b: &Path,
    out: &mut Vec<Value>,
) -> anyhow::Result<()> {
    let mut kept = KeptWatch::new(run);
    out.push(run.measure(name, || {
        kept.poll();
        looks_same(a, b)
    })?);
    kept.note(out);
    check(a, b)
}

fn check(a: &Path, b: &Path) -> anyhow::Result<()> {
    if !same_bytes(a, b) {
        bail!("{} and {} differ after sync", a.display(), b.display());
    }
    Ok(())
}

pub(super) fn scenarios(args: &SyncArgs, run: &Run<'_>) -> anyhow::Result<Vec<Value>> {
    let size = (args.size_mib << 20) as usize;
    let big_a = run.a_folder.join("big.bin");
    let big_b = run.b_folder.join("big.bin");
    let mut out = Vec::new();

    // 1. A new large file. It is written and made durable outside the folder, then moved in:
    // it appears whole when the clock starts, so neither side can start on it before (a
    // watcher would otherwise see it being written, and work during its fsync).
    let incoming = run.a_folder.with_extension("incoming-big.bin");
    {
        let mut f = std::fs::File::create(&incoming)?;
        let mut buf = vec![0u8; 8 << 20];
        let mut written = 0;
        while written < size {
            let n = buf.len().min(size - written);
            random_fill(format!("big {written}").as_bytes(), &mut buf[..n]);
            f.write_all(&buf[..n])?;
            written += n;
        }
        f.sync_all()?;
    }
    std::fs::rename(&incoming, &big_a)?;
    out.push(run.measure("new_file", || looks_same(&big_a, &big_b))?);
    check(&big_a, &big_b)?;

    // 2. One byte inserted in the middle (the file rewritten from there on, as editors do).
    {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&big_a)?;
        let mid = (size / 2) as u64;
        let mut tail = Vec::with_capacity(size / 2);
        f.seek(SeekFrom::Start(mid))?;
        std::io::Read::read_to_end(&mut f, &mut tail)?;
        f.seek(SeekFrom::Start(mid))?;
        f.write_all(b"!")?;
        f.write_all(&tail)?;
        f.sync_all()?;
    }
    measure_edit(run, "insert_1_byte", &big_a, &big_b, &mut out)?;

    // 3. 4 KiB overwritten in the middle, in place.
    {
        let f = std::fs::OpenOptions::new().write(true).open(&big_a)?;
        let mut block = vec![0u8; 4096];
        random_fill(b"overwrite", &mut block);
        f.write_all_at(&block, (size / 2 + 12_345) as u64)?;
        f.sync_all()?;
    }
    measure_edit(run, "overwrite_4_kib", &big_a, &big_b, &mut out)?;

    // 4. Many small files.
    let dir_a = run.a_folder.join("small");
    let dir_b = run.b_folder.join("small");
    std::fs::create_dir_all(&dir_a)?;
    let mut sizes = [0u8; 8];
    for i in 0..args.small_files {
        random_fill(format!("size {i}").as_bytes(), &mut sizes);
        let len = 1024 + (u64::from_le_bytes(sizes) % (9 * 1024)) as usize;
        let mut data = vec![0u8; len];
        random_fill(format!("small {i}").as_bytes(), &mut data);
        std::fs::write(dir_a.join(format!("f{i:05}.bin")), &data)?;
    }
    let n = args.small_files as usize;
    out.push(run.measure("small_files", || count_files(&dir_b) >= n)?);
    Ok(out)
}
