//! `harp bench ...`: measurements on this machine, each next to a reference measured in the
//! same run (see `docs/benchmarks.md`).
//!
//! `harp bench ingest` measures the local engine: scanning a 1 GiB file of random data and
//! 10,000 files of 1–10 KiB into the index, next to the raw pipeline (keyed FastCDC, seal =
//! XChaCha20-Poly1305 + BLAKE3, on the same number of threads, from memory, with no files and
//! no index); peak RSS of each scan; and the rescan time of 100,000 unchanged files.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use rayon::prelude::*;

use crate::chunk;
use crate::config::Dirs;
use crate::node::Node;
use crate::scan::{self, Options};

/// `harp bench` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// The local engine: ingest speed next to the raw pipeline, peak RSS, rescan time.
    Ingest(IngestArgs),
    /// The chunk exchange: a file's blobs between nodes on loopback, next to a raw libp2p
    /// stream moving the same bytes, from one and from two source peers.
    Transfer(TransferArgs),
    /// Two daemons on loopback: a new large file, a 1-byte insert, a 4 KiB overwrite, many
    /// small files; time, bytes on the wire, CPU seconds and peak RSS of each.
    Sync(super::bench_sync::SyncArgs),
}

/// Arguments of `harp bench transfer`.
#[derive(Debug, clap::Args)]
pub struct TransferArgs {
    /// Size of the file to move, MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// Transport of every measurement in the run.
    #[arg(long, value_enum, default_value = "quic")]
    pub transport: super::bench_transfer::Transport,
    /// Scratch directory (default: the system temp dir); removed afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `harp bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// Size of the large file, MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: u64,
    /// Number of small files (1–10 KiB each).
    #[arg(long, default_value_t = 10_000)]
    pub small_files: u64,
    /// Number of unchanged files for the rescan measurement.
    #[arg(long, default_value_t = 100_000)]
    pub rescan_files: u64,
    /// Hashing threads (default: the config default, cores up to 4).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Scratch directory (default: the system temp dir); removed afterwards.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// CPU seconds (user + system) this process has used so far.
pub(crate) fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat are utime and stime in clock ticks (100 per second
    // on Linux); the command name (field 2) may hold spaces, so count from its closing ')'.
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// Resets the kernel's peak-RSS counter of this process (Linux ≥ 4.0), so that each phase's
/// peak can be read on its own.
pub(crate) fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

/// Peak RSS of this process since the last reset, in MiB.
pub(crate) fn peak_rss_mib() -> f64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn fill(seed: &str, out: &mut [u8]) {
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(out);
}

pub(crate) fn write_big_file(path: &Path, mib: u64) -> anyhow::Result<()> {
    let mut f = fs::File::create(path)?;
    let mut xof = blake3::Hasher::new()
        .update(b"harp bench big file")
        .finalize_xof();
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..mib {
        xof.fill(&mut buf);
        f.write_all(&buf)?;
    }
    f.sync_all()?;
    Ok(())
}

fn write_small_files(dir: &Path, count: u64, min: usize, max: usize) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut buf = vec![0u8; max];
    for i in 0..count {
        let sub = dir.join(format!("d{:03}", i / 1000));
        if i % 1000 == 0 {
            fs::create_dir_all(&sub)?;
        }
        let len = min + (i as usize * 7919) % (max - min + 1);
        fill(&format!("small {i}"), &mut buf[..len]);
        fs::write(sub.join(format!("f{i:06}.bin")), &buf[..len])?;
        total += len as u64;
    }
    Ok(total)
}

struct Env {
    node: Node,
}

impl Env {
    fn new(base: &Path) -> anyhow::Result<Self> {
        let dirs = Dirs {
            config: base.join("state/config"),
            data: base.join("state/data"),
        };
        let (node, _) = Node::init(dirs, "bench")?;
        Ok(Self { node })
    }

    fn scan(&mut self, path: &Path, threads: usize) -> anyhow::Result<(scan::Summary, f64)> {
        let cfg = match self
            .node
            .config
            .folders
            .iter()
            .find(|f| f.path == fs::canonicalize(path).unwrap_or_default())
        {
            Some(f) => f.clone(),
            None => self.node.add_folder(path, None)?,
        };
        let folder = self.node.open_folder(&cfg)?;
        let mut index = self.node.index()?;
        reset_peak_rss();
        let summary = scan::scan(
            &mut index,
            &folder,
            &self.node.device,
            &Options {
                threads,
                progress: None,
                early: None,
            },
        )?;
        Ok((summary, peak_rss_mib()))
    }
}

pub(crate) fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

pub(crate) fn say(json: bool, line: impl AsRef<str>) {
    if !json {
        eprintln!("{}", line.as_ref());
    }
}

fn ingest(args: &IngestArgs) -> anyhow::Result<serde_json::Value> {
    let threads = args
        .threads
        .unwrap_or_else(|| crate::config::Config::new(String::new()).hashing_threads)
        .max(1);
    let base = tempfile::Builder::new()
        .prefix("harp-bench-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))
        .context("creating the scratch directory")?;
    let mut env = Env::new(base.path())?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let keys = harp_protocol::keys::FolderKey::from_bytes([7; 32]).schedule();
    let chunker = harp_protocol::chunker::Chunker::for_folder(&keys);

    // 1. One large file.
    let big_dir = base.path().join("big");
    fs::create_dir_all(&big_dir)?;
    say(args.json, format!("writing a {} MiB file…", args.size_mib));
    write_big_file(&big_dir.join("big.bin"), args.size_mib)?;
    let big_bytes = args.size_mib << 20;
    say(args.json, "scanning it…");
    let (s, big_rss) = env.scan(&big_dir, threads)?;
    let big_secs = s.elapsed.as_secs_f64();
    anyhow::ensure!(
        s.hashed_bytes == big_bytes,
        "the scan hashed {} bytes, expected {big_bytes}",
        s.hashed_bytes
    );
    say(
        args.json,
        "reference: the raw pipeline on the same bytes in memory…",
    );
    let data = fs::read(big_dir.join("big.bin"))?;
    let t = Instant::now();
    let h = pool.install(|| chunk::hash_bytes(&data, &chunker, &keys));
    let ref_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        h.size == big_bytes,
        "reference pipeline covered {} bytes",
        h.size
    );

    // 2. The same file changed, then rescanned: 4 KiB overwritten in its middle, then one
    //    byte inserted there. Only the chunks around the change are new.
    say(args.json, "overwriting 4 KiB in its middle and rescanning…");
    let big_path = big_dir.join("big.bin");
    let middle = big_bytes / 2;
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&big_path)?;
        f.write_all_at(&[0x5a; 4096], middle)?;
        f.sync_all()?;
    }
    // One changed file, read again and recorded as modified.
    let mut rescan = |what: &str| -> anyhow::Result<scan::Summary> {
        let (s, _) = env.scan(&big_dir, threads)?;
        anyhow::ensure!(
            s.hashed_files == 1 && s.modified == 1,
            "the rescan after {what} hashed {} files, modified {}",
            s.hashed_files,
            s.modified
        );
        Ok(s)
    };
    let s_over = rescan("an overwrite")?;
    say(
        args.json,
        "inserting one byte in its middle and rescanning…",
    );
    let mut changed = data;
    changed.insert(middle as usize, 0xa5);
    fs::write(&big_path, &changed)?;
    fs::File::open(&big_path)?.sync_all()?;
    let s_ins = rescan("an insert")?;
    // Reference: one keyed BLAKE3 pass over the same bytes in memory on the same threads,
    // the least any rescan that reads the file has to do.
    let t = Instant::now();
    let piece = (changed.len() / threads).max(1);
    let tags: usize = pool.install(|| {
        changed
            .par_chunks(piece)
            .map(|p| blake3::keyed_hash(&[7; 32], p).as_bytes()[0] as usize)
            .sum()
    });
    let blake3_secs = t.elapsed().as_secs_f64();
    std::hint::black_box(tags);
    drop(changed);

    // 3. Many small files.
    let small_dir = base.path().join("small");
    say(
        args.json,
        format!("writing {} small files…", args.small_files),
    );
    let small_bytes = write_small_files(&small_dir, args.small_files, 1024, 10 * 1024)?;
    say(args.json, "scanning them…");
    let (s2, small_rss) = env.scan(&small_dir, threads)?;
    let small_secs = s2.elapsed.as_secs_f64();
    anyhow::ensure!(
        s2.created == args.small_files + args.small_files.div_ceil(1000),
        "small-file scan recorded {} entries",
        s2.created
    );
    let mut bufs = Vec::new();
    for d in fs::read_dir(&small_dir)? {
        for f in fs::read_dir(d?.path())? {
            bufs.push(fs::read(f?.path())?);
        }
    }
    let t = Instant::now();
    let n: usize = pool.install(|| {
        bufs.par_iter()
            .map(|b| chunk::hash_bytes(b, &chunker, &keys).chunks.len())
            .sum()
    });
    let small_ref_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(n as u64 == args.small_files, "reference made {n} chunks");
    drop(bufs);

    // 4. Rescan of unchanged files.
    let rescan_dir = base.path().join("rescan");
    say(
        args.json,
        format!("writing {} files for the rescan…", args.rescan_files),
    );
    write_small_files(&rescan_dir, args.rescan_files, 16, 64)?;
    say(args.json, "first scan…");
    env.scan(&rescan_dir, threads)?;
    say(args.json, "rescan…");
    let (s3, rescan_rss) = env.scan(&rescan_dir, threads)?;
    anyhow::ensure!(
        s3.hashed_files == 0,
        "the rescan hashed {} files",
        s3.hashed_files
    );

    Ok(serde_json::json!({
        "machine": machine(),
        "hashing_threads": threads,
        "large_file": {
            "bytes": big_bytes,
            "harp_scan_mb_s": mb_s(big_bytes, big_secs),
            "reference_pipeline_mb_s": mb_s(big_bytes, ref_secs),
            "ratio": ref_secs / big_secs,
            "scan_seconds": big_secs,
            "peak_rss_mib": big_rss,
        },
        "changed_large_file": {
            "overwrite_4_kib_rescan_seconds": s_over.elapsed.as_secs_f64(),
            "insert_1_byte_rescan_seconds": s_ins.elapsed.as_secs_f64(),
            "reference_keyed_blake3_seconds": blake3_secs,
            "insert_ratio": blake3_secs / s_ins.elapsed.as_secs_f64(),
        },
        "small_files": {
            "files": args.small_files,
            "bytes": small_bytes,
            "harp_scan_mb_s": mb_s(small_bytes, small_secs),
            "harp_scan_files_s": args.small_files as f64 / small_secs,
            "reference_pipeline_mb_s": mb_s(small_bytes, small_ref_secs),
            "ratio": small_ref_secs / small_secs,
            "scan_seconds": small_secs,
            "peak_rss_mib": small_rss,
        },
        "rescan_unchanged": {
            "files": args.rescan_files,
            "seconds": s3.elapsed.as_secs_f64(),
            "peak_rss_mib": rescan_rss,
        },
    }))
}

/// The CPU model and core count, for the record.
pub(crate) fn machine() -> serde_json::Value {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    serde_json::json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    })
}

/// Runs `harp bench ...`.
pub fn run(cmd: &Command) -> anyhow::Result<ExitCode> {
    // The nodes' own log, on standard error, when asked for (`RUST_LOG=harp=debug`).
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    match cmd {
        Command::Ingest(args) => {
            let result = ingest(args)?;
            if args.json {
                super::print_json(&result)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&result)?);
            }
        }
        Command::Sync(args) => {
            let result = super::bench_sync::sync(args)?;
            if args.json {
                super::print_json(&result)?;
            } else {
                print!("{}", super::bench_summary::table(&result));
            }
        }
        Command::Transfer(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            let result = runtime.block_on(super::bench_transfer::transfer(args))?;
            if args.json {
                super::print_json(&result)?;
            } else {
                println!("{}", serde_json::to_string_pretty(&result)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
