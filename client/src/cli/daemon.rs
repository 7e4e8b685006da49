//! `harp daemon` and `harp peers`.

use std::process::ExitCode;

use serde_json::{Value, json};

/// Arguments of `harp daemon`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Arguments of `harp peers`.
#[derive(Debug, clap::Args)]
pub struct PeersArgs {
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How many malloc arenas the daemon lets glibc make (see [`limit_malloc_arenas`]).
const MALLOC_ARENAS: &str = "2";
/// Blocks from this size on are mapped on their own (see [`limit_malloc_arenas`]): above the
/// largest blob (256 KiB and its header), so chunks stay on the heap.
const MMAP_THRESHOLD: usize = 1 << 20;

/// Re-executes the daemon with `MALLOC_ARENA_MAX` set, unless the environment sets it.
///
/// glibc gives a thread that allocates while others hold the arenas an arena of its own (up
/// to 8 per core), and an arena keeps most of what was freed in it. The daemon's short-lived
/// blocking threads (chunk reads, SQLite) spread its memory over many arenas: with 2 arenas,
/// `harp bench sync --size-mib 16`'s small-files scenario peaked at 75-80 MB on the sending
/// side instead of 100-107, and 82-86 instead of 90-91 on the receiving side, for about 5 % more
/// CPU (docs/benchmarks.md). glibc reads the limit once, at process start, hence the exec
/// (same process id, arguments and descriptors). If it fails the daemon runs on as it is.
///
/// Unless `GLIBC_TUNABLES` is set, the exec also fixes glibc's mmap threshold at
/// [`MMAP_THRESHOLD`]. Left alone, glibc raises it to the largest block freed so far (a scan's
/// 8 MiB window, a 4 MiB write buffer) and its trim threshold to twice that, so after a
/// large file the heap keeps tens of MB it could give back. Fixed, the large buffers are
/// mapped and unmapped on their own and the heap is trimmed past 128 KiB: over whole `harp
/// bench sync` runs, peaks of 70-81 / 80-91 MB against 73-99 / 87-94 MB (seven pairs,
/// docs/benchmarks.md, session 18), CPU within the spread. The heap's 128 KiB trim threshold
/// would make every burst of blobs fault in fresh pages; blobs in flight reuse buffers
/// ([`crate::buffers`]) instead.
fn limit_malloc_arenas() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut command = std::process::Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", MALLOC_ARENAS);
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        command.env(
            "GLIBC_TUNABLES",
            format!("glibc.malloc.mmap_threshold={MMAP_THRESHOLD}"),
        );
    }
    let err = command.exec();
    eprintln!("harp: could not restart with MALLOC_ARENA_MAX={MALLOC_ARENAS} ({err}); going on");
}

/// Runs `harp daemon` until SIGINT or SIGTERM. Logs go to stderr (`RUST_LOG` filters them).
pub fn run(_args: &Args) -> anyhow::Result<ExitCode> {
    limit_malloc_arenas();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,libp2p=warn,libp2p_kad=error")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let node = super::open_node()?;
    crate::daemon::run(node)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `harp peers`: asks the running daemon.
pub fn peers(args: &PeersArgs) -> anyhow::Result<ExitCode> {
    let dirs = crate::config::Dirs::from_env()?;
    let v = crate::daemon::request(&dirs.control_socket(), &json!({"cmd": "peers"}))?;
    if args.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    let peers = v["peers"].as_array().cloned().unwrap_or_default();
    if peers.is_empty() {
        println!("No peers connected");
    }
    for p in &peers {
        let conns: Vec<String> = p["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["addr"].as_str().unwrap_or("?").to_owned())
            .collect();
        let lane = match p["bulk_lane_bytes"].as_u64() {
            Some(n) if n > 0 => format!("  ({n} B over a bulk lane)"),
            _ => String::new(),
        };
        println!(
            "{}  {}  rtt {}  in {} B  out {} B{lane}  {}",
            p["device"].as_str().unwrap_or("?"),
            if p["direct"] == Value::Bool(true) {
                "direct "
            } else {
                "RELAYED"
            },
            p["rtt_ms"]
                .as_f64()
                .map(|r| format!("{r:.1} ms"))
                .unwrap_or_else(|| "-".into()),
            p["bytes_in"],
            p["bytes_out"],
            conns.join(", ")
        );
    }
    if let Some(r) = v["direct_ratio"].as_f64() {
        println!(
            "{:.1}% of chunk bytes went over direct connections",
            r * 100.0
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `harp status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `harp status`: asks the running daemon.
pub fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let dirs = crate::config::Dirs::from_env()?;
    let v = crate::daemon::request(&dirs.control_socket(), &json!({"cmd": "status"}))?;
    if args.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("device {}", v["device_id"].as_str().unwrap_or("?"));
    for a in v["listen"].as_array().into_iter().flatten() {
        let a = a.as_str().unwrap_or("?");
        let kind = if a.contains("p2p-circuit") {
            "relayed"
        } else {
            "direct"
        };
        println!("  listening ({kind}) on {a}");
    }
    if let Some(web) = v["web"].as_str() {
        println!("  web UI on {web} (`harp ui` prints it with its token)");
    }
    let bridge = &v["bridge"];
    if !bridge.is_null() {
        println!(
            "  bridge {} as {}: {}",
            bridge["url"].as_str().unwrap_or("?"),
            bridge["user"].as_str().unwrap_or("?"),
            bridge["state"].as_str().unwrap_or("starting")
        );
        if let Some(waiting) = bridge["waiting_devices"]
            .as_array()
            .filter(|w| !w.is_empty())
        {
            println!(
                "    {} device(s) listed by the bridge wait for approval here (`harp device list`)",
                waiting.len()
            );
        }
        for (label, epoch) in bridge["key_epochs"].as_object().into_iter().flatten() {
            if epoch.as_u64().is_some_and(|e| e > 0) {
                println!(
                    "    {label}: metadata key epoch {epoch} (rotated since a device left the folder)"
                );
            }
        }
        for (label, log) in bridge["logs"].as_object().into_iter().flatten() {
            match log["state"].as_str() {
                Some("verified") => {
                    let witnesses = match log["cosigned_by"].as_array() {
                        Some(names) => {
                            let names: Vec<&str> =
                                names.iter().filter_map(|n| n.as_str()).collect();
                            let quorum = log["quorum"].as_u64().unwrap_or(0);
                            if names.is_empty() {
                                format!(
                                    "; no witness cosigned it yet (the policy asks for {quorum})"
                                )
                            } else {
                                format!(
                                    "; cosigned by {} ({} of the {quorum} the policy asks for)",
                                    names.join(", "),
                                    names.len()
                                )
                            }
                        }
                        None => String::new(),
                    };
                    println!(
                        "    log of {label}: verified, {} entries{witnesses}",
                        log["size"].as_u64().unwrap_or(0)
                    )
                }
                _ => println!(
                    "    log of {label}: ALARM: {}",
                    log["problem"].as_str().unwrap_or("?")
                ),
            }
        }
    }
    for f in v["folders"].as_array().into_iter().flatten() {
        let sync = &f["sync"];
        println!(
            "  folder {} ({}) at {}: {}, {} files, {} conflict copies",
            f["label"].as_str().unwrap_or("?"),
            f["id"].as_str().unwrap_or("?"),
            f["path"].as_str().unwrap_or("?"),
            sync["state"].as_str().unwrap_or("?"),
            sync["files"].as_u64().unwrap_or(0),
            sync["conflicts"].as_u64().unwrap_or(0),
        );
        if let Some(line) = progress_line(sync) {
            println!("    {line}");
        }
        for i in sync["incoming"].as_array().into_iter().flatten() {
            println!(
                "    receiving {} early: {:.1} of {:.1} MB (the other device is still scanning it)",
                i["path"].as_str().unwrap_or("?"),
                i["bytes_done"].as_u64().unwrap_or(0) as f64 / 1e6,
                i["bytes_total"].as_u64().unwrap_or(0) as f64 / 1e6,
            );
        }
        if let Some(e) = sync["error"].as_str() {
            println!("    error: {e}");
        }
        let held_back = sync["held_back_total"].as_u64().unwrap_or(0);
        match sync["direction"].as_str() {
            Some("receive_only") => println!(
                "    receive-only: {held_back} changes made here not sent{}",
                if held_back > 0 {
                    " (harp folder revert undoes them)"
                } else {
                    ""
                }
            ),
            Some("send_only") => println!(
                "    send-only: {held_back} changes made elsewhere not applied here{}",
                if held_back > 0 {
                    " (harp folder override makes this device's versions win)"
                } else {
                    ""
                }
            ),
            _ => {}
        }
        for p in sync["held_back"].as_array().into_iter().flatten() {
            println!("      {}", p.as_str().unwrap_or("?"));
        }
        for w in sync["waiting"].as_array().into_iter().flatten() {
            println!(
                "    waiting: {}: {}",
                w["path"].as_str().unwrap_or("?"),
                w["why"].as_str().unwrap_or("?")
            );
        }
        for w in sync["not_here"].as_array().into_iter().flatten() {
            println!(
                "    not here: {}: {}",
                w["path"].as_str().unwrap_or("?"),
                w["why"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How far a running scan or sync round has got, in one line (`None`: nothing runs).
fn progress_line(sync: &Value) -> Option<String> {
    let p = &sync["progress"];
    let n = |k: &str| p[k].as_u64().unwrap_or(0);
    // "3 of 10 <what>, 1.5 of 6.0 MB<bytes> (25 %)"
    let amounts = |what: &str, bytes: &str| {
        let (done, total) = (n("bytes_done"), n("bytes_total"));
        let percent = if total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / total as f64
        };
        format!(
            "{} of {} {what}, {:.1} of {:.1} MB{bytes} ({percent:.0} %)",
            n("files_done"),
            n("files_total"),
            done as f64 / 1e6,
            total as f64 / 1e6,
        )
    };
    match sync["state"].as_str()? {
        "syncing" => {
            let mut line = format!("syncing: {}", amounts("actions", ""));
            if let Some(eta) = p["eta_secs"].as_f64() {
                line.push_str(&format!(", about {eta:.0} s left"));
            }
            if let Some(at) = p["current"].as_str().filter(|c| !c.is_empty()) {
                line.push_str(&format!("; at {at}"));
            }
            Some(line)
        }
        "scanning" if n("files_total") == 0 => {
            Some(format!("scanning: {} entries found so far", n("walked")))
        }
        "scanning" => Some(format!("scanning: {}", amounts("files", " hashed"))),
        _ => None,
    }
}

/// Arguments of `harp ui`.
#[derive(Debug, clap::Args)]
pub struct UiArgs {
    /// Print the address and token as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `harp ui`: the running daemon's web UI address, with the token in its fragment (it
/// never reaches a server log; the page keeps it for the tab's session).
pub fn ui(args: &UiArgs) -> anyhow::Result<ExitCode> {
    let dirs = crate::config::Dirs::from_env()?;
    let v = crate::daemon::request(&dirs.control_socket(), &json!({"cmd": "status"}))?;
    let Some(web) = v["web"].as_str() else {
        anyhow::bail!(
            "the daemon serves no web UI: set web_listen in config.toml (e.g. \"127.0.0.1:7384\") and restart it"
        );
    };
    let token = crate::web::token(&dirs)?;
    if args.json {
        println!("{}", json!({"url": web, "token": token}));
    } else {
        println!("{web}#token={token}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_as_a_line() {
        let syncing = json!({"state": "syncing", "progress": {
            "files_total": 4, "files_done": 1, "bytes_total": 200_000_000u64,
            "bytes_done": 50_000_000u64, "current": "big.iso", "eta_secs": 12.4}});
        assert_eq!(
            progress_line(&syncing).unwrap(),
            "syncing: 1 of 4 actions, 50.0 of 200.0 MB (25 %), about 12 s left; at big.iso"
        );
        let walking = json!({"state": "scanning", "progress": {"walked": 7, "files_total": 0}});
        assert_eq!(
            progress_line(&walking).unwrap(),
            "scanning: 7 entries found so far"
        );
        assert_eq!(progress_line(&json!({"state": "idle"})), None);
    }
}
