//! The same scenarios as `harp bench sync`, with Syncthing, for a ratio in the same run.
//!
//! Two `syncthing serve` instances run in a network namespace made for the run, with only
//! loopback up, so they cannot reach any other address; global and local discovery, relays and
//! NAT traversal are off, each knows the other at a fixed loopback port, and the folder's file
//! watcher delay is 1 s (its minimum). Wire bytes come from its REST API
//! (`/rest/system/connections`, total in + out of A), CPU and peak RSS from /proc, like Harp's.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::bench_sync::{Run, SyncArgs, scenarios};

const API_KEY: &str = "harp-bench-syncthing-key";

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

fn device_id(home: &Path) -> anyhow::Result<String> {
    let out = Command::new("syncthing")
        .args(["serve", "--device-id"])
        .arg(format!("--home={}", home.display()))
        .output()
        .context("running syncthing")?;
    let id = String::from_utf8(out.stdout)?.trim().to_owned();
    if id.len() < 50 {
        bail!("syncthing printed no device id");
    }
    Ok(id)
}

fn config(folder: &Path, ids: &[String; 2], me: usize) -> String {
    let port = |i: usize| 22_000 + i;
    let devices: String = (0..2)
        .map(|i| {
            format!(
                r#"<device id="{}" name="d{i}" compression="metadata" introducer="false"><address>tcp://127.0.0.1:{}</address></device>"#,
                ids[i],
                port(i)
            )
        })
        .collect();
    format!(
        r#"<configuration version="36">
  <folder id="bench" label="bench" path="{path}" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="true" fsWatcherDelayS="1" ignorePerms="false" autoNormalize="true">
    <device id="{a}"></device>
    <device id="{b}"></device>
  </folder>
  {devices}
  <gui enabled="true" tls="false"><address>127.0.0.1:{gui}</address><apikey>{API_KEY}</apikey></gui>
  <options>
    <listenAddress>tcp://127.0.0.1:{listen}</listenAddress>
    <globalAnnounceEnabled>false</globalAnnounceEnabled>
    <localAnnounceEnabled>false</localAnnounceEnabled>
    <relaysEnabled>false</relaysEnabled>
    <natEnabled>false</natEnabled>
    <urAccepted>-1</urAccepted>
    <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
    <startBrowser>false</startBrowser>
    <crashReportingEnabled>false</crashReportingEnabled>
  </options>
</configuration>
"#,
        path = folder.display(),
        a = ids[0],
        b = ids[1],
        gui = 8_384 + me,
        listen = port(me),
    )
}

fn rest(ns: &str, me: usize, path: &str) -> anyhow::Result<Value> {
    let out = in_ns(
        ns,
        &[
            "curl",
            "-s",
            "-m",
            "5",
            "-H",
            &format!("X-API-Key: {API_KEY}"),
            &format!("http://127.0.0.1:{}{path}", 8_384 + me),
        ],
    )
    .output()?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Runs the scenarios with Syncthing in `base/syncthing`.
pub(super) fn run(args: &SyncArgs, base: &Path) -> anyhow::Result<Value> {
    for tool in ["syncthing", "ip", "curl"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| !s.success())
            .unwrap_or(true)
        {
            bail!("{tool} is not installed");
        }
    }
    let ns = Netns(format!("harp-bench-{}", std::process::id()));
    if !Command::new("ip")
        .args(["netns", "add", &ns.0])
        .status()?
        .success()
    {
        bail!("cannot create a network namespace (needs root)");
    }
    in_ns(&ns.0, &["ip", "link", "set", "lo", "up"]).status()?;
    let root = base.join("syncthing");
    let homes = [root.join("a"), root.join("b")];
    let folders = [root.join("a/Shared"), root.join("b/Shared")];
    for (h, f) in homes.iter().zip(&folders) {
        std::fs::create_dir_all(f)?;
        let ok = Command::new("syncthing")
            .args(["generate", "--no-default-folder", "--skip-port-probing"])
            .arg(format!("--home={}", h.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success();
        if !ok {
            bail!("syncthing generate failed");
        }
    }
    let ids = [device_id(&homes[0])?, device_id(&homes[1])?];
    for i in 0..2 {
        std::fs::write(homes[i].join("config.xml"), config(&folders[i], &ids, i))?;
    }
    let mut procs: Vec<Child> = Vec::new();
    for h in &homes {
        procs.push(
            in_ns(
                &ns.0,
                &[
                    "syncthing",
                    "serve",
                    "--no-browser",
                    "--no-restart",
                    &format!("--home={}", h.display()),
                    &format!("--logfile={}", h.join("log").display()),
                ],
            )
            .env("STNOUPGRADE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
        );
    }
    let result = (|| {
        // Connected, and the folder idle on both sides.
        let started = Instant::now();
        loop {
            let connected = rest(&ns.0, 0, "/rest/system/connections")
                .ok()
                .and_then(|v| v["connections"][&ids[1]]["connected"].as_bool())
                .unwrap_or(false);
            if connected {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the two Syncthing instances did not connect in 60 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let traffic = || -> anyhow::Result<u64> {
            let v = rest(&ns.0, 0, "/rest/system/connections")?;
            let t = &v["total"];
            Ok(t["inBytesTotal"].as_u64().unwrap_or(0) + t["outBytesTotal"].as_u64().unwrap_or(0))
        };
        let run = Run {
            a_folder: folders[0].clone(),
            b_folder: folders[1].clone(),
            pids: [procs[0].id(), procs[1].id()],
            traffic: &traffic,
        };
        scenarios(args, &run)
    })();
    for p in &mut procs {
        let _ = p.kill();
        let _ = p.wait();
    }
    Ok(json!({
        "version": String::from_utf8(Command::new("syncthing").arg("--version").output()?.stdout)?.trim(),
        "scenarios": result?,
    }))
}
