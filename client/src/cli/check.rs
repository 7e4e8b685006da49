//! `harp check [FOLDER] [--read-data]`: verify the index, the chains and the manifests (and with
//! `--read-data` every file's bytes); exit 1 naming every problem.

use std::io::IsTerminal as _;
use std::process::ExitCode;

/// Arguments of `harp check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this folder (label, id or path); default: every folder.
    pub folder: Option<String>,
    /// Also read every file and check its bytes against its recorded version.
    #[arg(long = "read-data")]
    pub read_data: bool,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `harp check`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let node = super::open_node()?;
    let index = node.index()?;
    let folders: Vec<_> = match &args.folder {
        Some(f) => vec![node.config.folder(f)?.clone()],
        None => node.config.folders.clone(),
    };
    let mut failed = false;
    let mut out = Vec::new();
    for f in &folders {
        let folder = node.open_folder(f)?;
        let bar = (!args.json && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {pos}/{len} files",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        let show = |done: u64, total: u64, bytes: u64| {
            if let Some(bar) = &bar {
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(format!("{}: {} MiB read", f.label, bytes >> 20));
            }
        };
        let report = crate::check::check_folder(&index, &folder, args.read_data, &show);
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        let report = report?;
        failed |= !report.problems.is_empty();
        if !args.json {
            for p in &report.problems {
                let at = if p.path.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", p.path)
                };
                println!("{}: {at}{}", f.label, p.what);
            }
            for p in &report.pending {
                println!(
                    "{}: {p}: changed since the last scan (harp scan records it; not checked)",
                    f.label
                );
            }
            let read = if args.read_data {
                format!(", {} bytes read", report.bytes_read)
            } else {
                String::new()
            };
            println!(
                "{}: {} ({} entries checked{read})",
                f.label,
                if report.problems.is_empty() {
                    "ok".to_owned()
                } else {
                    format!("{} problem(s)", report.problems.len())
                },
                report.rows
            );
        }
        out.push(serde_json::json!({"folder": f.label, "id": f.id.to_string(), "report": report}));
    }
    if args.json {
        super::print_json(&out)?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
