//! The daemon's local web UI in a real browser: two daemons sync a folder with a conflict and
//! a file with several versions; headless Chromium (Debian's `chromium`) loads the page of one
//! of them with the token `harp ui` prints, and the test asserts what the page shows: the
//! folder, the peer and its path (direct), the conflict copy, and the file's versions with
//! their proof status. The REST API under it refuses a missing token and a foreign host.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::Command;

use harp_e2e::{harp_ok, pair, tree, wait_for, wait_same};

fn ok(home: &Path, args: &[&str]) -> String {
    harp_ok(home, args).unwrap()
}

/// The DOM of `url` after its scripts ran, from headless Chromium.
fn browser_dom(url: &str, profile: &Path) -> String {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is not installed: ./scripts/test installs Debian's chromium");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Run the page's timers and fetches for up to 8 s of virtual time, then dump.
            "--virtual-time-budget=8000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.post(url).header("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.call().unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn the_web_ui_shows_folders_peers_conflicts_and_versions_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, _pa, pb) = pair(tmp.path()).unwrap();
    std::fs::write(a.folder.join("plan.txt"), b"v1").unwrap();
    wait_same(&a.folder, &b.folder, "first sync");
    std::fs::write(a.folder.join("plan.txt"), b"v2, on A").unwrap();
    wait_same(&a.folder, &b.folder, "second version");
    // A conflict: both edit while B is down.
    pb.kill9();
    std::fs::write(a.folder.join("plan.txt"), b"v3, on A").unwrap();
    std::fs::write(b.folder.join("plan.txt"), b"v3, on B offline").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let (_pb, _) = b.start().unwrap();
    wait_same(&a.folder, &b.folder, "after the conflict");
    let conflict = tree(&a.folder)
        .into_keys()
        .find(|k| k.contains(".conflict-"))
        .expect("a conflict copy");
    let status: serde_json::Value =
        serde_json::from_str(&ok(&a.home, &["status", "--json"])).unwrap();
    let folder_id = status["folders"][0]["id"].as_str().unwrap().to_owned();
    let settled = wait_for(30, || {
        let s: serde_json::Value =
            serde_json::from_str(&ok(&a.home, &["status", "--json"])).unwrap();
        s["folders"][0]["sync"]["state"] == "idle" && s["folders"][0]["sync"]["conflicts"] == 1
    });
    assert!(settled.is_some());

    // The address with its token, and the API's guards.
    let ui = ok(&a.home, &["ui"]).trim().to_owned();
    let (base, token) = ui.split_once("#token=").unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{ui}");
    let api = format!("{base}api/v1/status");
    assert_eq!(get(&api, &[]).0, 401);
    assert_eq!(get(&api, &[("Authorization", "Bearer 00")]).0, 401);
    let bearer = format!("Bearer {token}");
    let (code, body) = get(
        &api,
        &[("Authorization", &bearer), ("Host", "evil.example")],
    );
    assert_eq!(code, 403, "{body}");
    let (code, body) = get(&api, &[("Authorization", &bearer)]);
    assert_eq!(code, 200, "{body}");
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["folders"][0]["label"], "shared");
    let (code, body) = get(
        &format!("{base}api/v1/folders/{folder_id}/versions?path=plan.txt"),
        &[("Authorization", &bearer)],
    );
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["chain_verified"], true, "{v}");
    assert!(v["chain"].as_array().unwrap().len() >= 3, "{v}");
    let (code, _) = get(
        &format!("{base}api/v1/folders/{folder_id}/versions?path=nope.txt"),
        &[("Authorization", &bearer)],
    );
    assert_eq!(code, 404);

    // The page, in a real browser, with the token in the fragment and a file to show.
    let dom = browser_dom(
        &format!("{ui}&folder={folder_id}&path=plan.txt"),
        &tmp.path().join("chromium"),
    );
    let text = |id: &str| -> String {
        // The element's markup, from its id to the end of its table (enough to assert on).
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id}: {dom}"));
        let end = dom[at..].find("</table>").map_or(dom.len(), |e| at + e);
        dom[at..end].to_owned()
    };
    assert!(dom.contains(&a.id), "the device id is shown");
    let folders = text("folders");
    assert!(
        folders.contains(">shared<") && folders.contains(">idle<"),
        "{folders}"
    );
    let peers = text("peers");
    assert!(
        peers.contains(&b.id) && peers.contains(">direct<"),
        "{peers}"
    );
    let conflicts = text("conflicts");
    assert!(conflicts.contains(&conflict), "{conflicts}");
    let versions = text("versions");
    assert!(
        versions.contains(">modify<") && versions.contains(">create<"),
        "{versions}"
    );
    assert!(versions.contains("chain verified"), "{versions}");
    assert!(
        dom.contains("plan.txt: ") && dom.contains(">verified<"),
        "the summary line: {dom}"
    );
    assert!(
        dom.contains("<div id=\"error\" role=\"alert\"></div>"),
        "the page shows an error: {dom}"
    );

    // A receive-only folder says so, with the changes it holds back.
    ok(&a.home, &["folder", "direction", "shared", "receive-only"]);
    std::fs::write(a.folder.join("draft.txt"), b"kept on A").unwrap();
    let held = wait_for(30, || {
        let s: serde_json::Value =
            serde_json::from_str(&ok(&a.home, &["status", "--json"])).unwrap();
        s["folders"][0]["sync"]["held_back_total"] == 1
    });
    assert!(held.is_some(), "draft.txt held back");
    let dom = browser_dom(&ui, &tmp.path().join("chromium"));
    assert!(
        dom.contains("receive-only, 1 changes made here not sent"),
        "{dom}"
    );
    assert!(dom.contains(">Pause</button>"), "{dom}");

    // Pausing from the web UI (its button posts this): live, in the config, and the page
    // then offers to resume. Without the token, or with a bad body, nothing changes.
    let pause_url = format!("{base}api/v1/folders/{folder_id}/pause");
    assert_eq!(post(&pause_url, &[], r#"{"paused": true}"#).0, 401);
    let (code, body) = post(
        &pause_url,
        &[("Authorization", &bearer)],
        r#"{"paused": 1}"#,
    );
    assert_eq!(code, 400, "{body}");
    let (code, _) = post(
        &format!("{base}api/v1/folders/nope/pause"),
        &[("Authorization", &bearer)],
        r#"{"paused": true}"#,
    );
    assert_eq!(code, 404);
    let state = || -> serde_json::Value {
        let s: serde_json::Value =
            serde_json::from_str(&ok(&a.home, &["status", "--json"])).unwrap();
        s["folders"][0]["sync"]["state"].clone()
    };
    assert_ne!(state(), "paused");
    let (code, body) = post(
        &pause_url,
        &[("Authorization", &bearer)],
        r#"{"paused": true}"#,
    );
    assert_eq!((code, body.as_str()), (200, r#"{"paused":true}"#));
    assert_eq!(state(), "paused");
    let config = std::fs::read_to_string(a.home.join("config/harp/config.toml")).unwrap();
    assert!(config.contains("paused = true"), "{config}");
    let dom = browser_dom(&ui, &tmp.path().join("chromium"));
    assert!(
        dom.contains(">paused<") && dom.contains(">Resume</button>"),
        "{dom}"
    );
    // A paused folder is not rescanned.
    let rescan_url = format!("{base}api/v1/folders/{folder_id}/rescan");
    let (code, body) = post(&rescan_url, &[("Authorization", &bearer)], "{}");
    assert_eq!(code, 409, "{body}");
    let (code, _) = post(
        &pause_url,
        &[("Authorization", &bearer)],
        r#"{"paused": false}"#,
    );
    assert_eq!(code, 200);
    assert!(wait_for(30, || state() != "paused").is_some());
    let config = std::fs::read_to_string(a.home.join("config/harp/config.toml")).unwrap();
    assert!(!config.contains("paused = true"), "{config}");

    // Rescan (the page's button, and `harp folder rescan`): the folder's last scan moves on.
    let last_scan = || -> i64 {
        let s: serde_json::Value =
            serde_json::from_str(&ok(&a.home, &["status", "--json"])).unwrap();
        s["folders"][0]["sync"]["last_scan_ms"]
            .as_i64()
            .unwrap_or(0)
    };
    assert!(wait_for(30, || last_scan() > 0).is_some());
    let before = last_scan();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(post(&rescan_url, &[], "{}").0, 401);
    let (code, body) = post(&rescan_url, &[("Authorization", &bearer)], "{}");
    assert_eq!((code, body.as_str()), (200, r#"{"rescan":true}"#));
    assert!(wait_for(30, || last_scan() > before).is_some(), "no rescan");
    let before = last_scan();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let said = ok(&a.home, &["folder", "rescan", "shared"]);
    assert!(said.contains("rescan started"), "{said}");
    assert!(wait_for(30, || last_scan() > before).is_some(), "no rescan");
    let dom = browser_dom(&ui, &tmp.path().join("chromium"));
    assert!(
        dom.contains(">Rescan</button>") && dom.contains(" · scanned "),
        "{dom}"
    );
}
