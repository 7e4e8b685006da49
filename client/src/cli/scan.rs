//! `harp scan FOLDER`: scan a folder for changes, with a progress bar.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::scan::{self, Options, Progress, Summary};

/// Arguments of `harp scan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder: its label, id (or a prefix), or path.
    pub folder: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep watching the folder and scan whenever it changes (and every
    /// `rescan_interval_secs`), until interrupted.
    #[arg(long)]
    pub watch: bool,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn print_summary(label: &str, s: &Summary) {
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    println!(
        "Scanned {label}: {} entries, {:.1} MiB in {:.2} s; hashed {} files, {:.1} MiB ({:.0} MiB/s)",
        s.entries,
        mib(s.bytes),
        secs,
        s.hashed_files,
        mib(s.hashed_bytes),
        mib(s.hashed_bytes) / secs
    );
    println!(
        "  {} new, {} modified, {} renamed, {} deleted, {} metadata only, {} unchanged",
        s.created, s.modified, s.renamed, s.deleted, s.metadata_only, s.unchanged
    );
    for k in &s.skipped {
        println!("  skipped {}: {}", k.path, k.reason);
    }
}

fn watch(args: &Args) -> anyhow::Result<ExitCode> {
    let node = super::open_node()?;
    let cfg = node.config.folder(&args.folder)?.clone();
    let folder = node.open_folder(&cfg)?;
    let mut index = node.index()?;
    if let Ok(_daemon_lock) = crate::daemon::lock_data_dir(&node) {
        crate::sync::apply::recover_edits_in_place(&index, &folder);
    }
    let timing = scan::watch::Timing {
        settle: Duration::from_millis(node.config.watch_delay_ms),
        rescan_every: Duration::from_secs(node.config.rescan_interval_secs.max(1)),
    };
    if !args.json {
        eprintln!(
            "Watching {} ({}); Ctrl-C stops",
            cfg.label,
            cfg.path.display()
        );
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let opts = Options {
        threads: node.config.hashing_threads,
        progress: None,
        early: None,
    };
    scan::watch::watch(
        &mut index,
        &folder,
        &node.device,
        &opts,
        timing,
        &stop,
        |result| match result {
            Ok(s) if args.json => {
                let _ = super::print_json(s);
            }
            Ok(s) => {
                if s.created + s.modified + s.renamed + s.deleted + s.metadata_only > 0
                    || !s.skipped.is_empty()
                {
                    print_summary(&cfg.label, s);
                }
            }
            Err(e) => eprintln!("harp: {e}"),
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `harp scan`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.watch {
        return watch(args);
    }
    let node = super::open_node()?;
    let cfg = node.config.folder(&args.folder)?.clone();
    let folder = node.open_folder(&cfg)?;
    let mut index = node.index()?;
    // An edit a stopped daemon cut short is finished or undone first (not under a running
    // daemon, whose edit it may be).
    if let Ok(_daemon_lock) = crate::daemon::lock_data_dir(&node) {
        crate::sync::apply::recover_edits_in_place(&index, &folder);
    }
    let progress = Progress::default();
    let show = !args.json && std::io::stderr().is_terminal();
    let done = std::sync::atomic::AtomicBool::new(false);
    let bar = show.then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    });
    let summary = std::thread::scope(|s| {
        let drawer = bar.as_ref().map(|bar| {
            let (progress, done) = (&progress, &done);
            s.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let total = progress.files_total.load(Ordering::Relaxed);
                    bar.set_length(progress.bytes_total.load(Ordering::Relaxed));
                    bar.set_position(progress.bytes_done.load(Ordering::Relaxed));
                    bar.set_message(if total == 0 {
                        format!(
                            "walking: {} entries",
                            progress.walked.load(Ordering::Relaxed)
                        )
                    } else {
                        format!(
                            "files {}/{}",
                            progress.files_done.load(Ordering::Relaxed),
                            total
                        )
                    });
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            })
        });
        let result = scan::scan(
            &mut index,
            &folder,
            &node.device,
            &Options {
                threads: node.config.hashing_threads,
                progress: Some(&progress),
                early: None,
            },
        );
        done.store(true, Ordering::Relaxed);
        if let Some(d) = drawer {
            let _ = d.join();
        }
        result
    })?;
    // Apply the folder's versions retention while we are here.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let pruned = crate::store::prune(&index, &folder, cfg.versioning, now_ms)?;
    if args.json {
        super::print_json(&summary)?;
    } else {
        print_summary(&cfg.label, &summary);
        if pruned.versions > 0 {
            println!(
                "  pruned {} old versions ({:.1} MiB) as the folder's versioning policy says",
                pruned.versions,
                mib(pruned.bytes)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
