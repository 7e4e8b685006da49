//! The local web UI and its REST API, served by the daemon on loopback (`web_listen`).
//!
//! `GET /` is a single page (no data in it); everything it shows comes from the JSON API under
//! `/api/v1/`, which answers only with `Authorization: Bearer <token>`, the token being the
//! contents of `<data dir>/web.token` (0600, made at the first start; `harp ui` prints the
//! page's address with it). Requests whose `Host` is not a loopback name are refused, so a web
//! page elsewhere cannot reach the API by DNS rebinding.
//!
//! | path | answer |
//! |---|---|
//! | `GET /api/v1/status` | device, addresses, bridge link and log audits, folders with their sync state |
//! | `GET /api/v1/peers` | peers: direct or relayed, addresses, RTT, bytes and bytes per second each way, bytes over bulk lanes |
//! | `GET /api/v1/folders/{id}/conflicts` | the folder's conflict copies (path, size, mtime) |
//! | `GET /api/v1/folders/{id}/versions?path=P` | a file's chain (seq, op, author, time, size), whether it verifies, whether the bridge logged each version, and the kept old versions |
//! | `POST /api/v1/folders/{id}/pause` with `{"paused": true\|false}` | pauses or resumes the folder on this device, as `harp folder pause`/`resume` do (live, and in the config): `{"paused": …}` |
//! | `POST /api/v1/folders/{id}/rescan` | scans the whole folder now, then a round runs (409 while paused): `{"rescan": true}` |
//!
//! The actions need the token like every read: a page elsewhere cannot send it (it does
//! not know the token, and a bearer header is not sent by the browser on its own).
//!
//! Errors are `{"error": "..."}` with 400 (bad request), 401 (no or wrong token), 403 (a host
//! that is not loopback), 404 (no such folder or file) or 409 (an action the folder's state
//! forbids).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use harp_protocol::chain;
use harp_protocol::ids::DeviceId;
use serde_json::{Value, json};

use crate::config::{Dirs, FolderConfig};
use crate::folder_status::FolderStatus;
use crate::net::Handle;

/// The page.
const PAGE: &str = include_str!("web/index.html");

/// The token file in the data directory.
pub fn token_path(dirs: &Dirs) -> PathBuf {
    dirs.data.join("web.token")
}

/// The API token, made (32 random bytes, hex, 0600) the first time.
pub fn token(dirs: &Dirs) -> anyhow::Result<String> {
    let path = token_path(dirs);
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() == 64 => Ok(t.trim().to_owned()),
        Ok(_) | Err(_) => {
            let mut bytes = [0u8; 32];
            getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let t = data_encoding::HEXLOWER.encode(&bytes);
            crate::config::write_private(&path, t.as_bytes())?;
            Ok(t)
        }
    }
}

/// What the API reads: the daemon's live state.
pub struct Api {
    /// The network node.
    pub handle: Handle,
    /// This device.
    pub device: DeviceId,
    /// The bridge link's status (null: not logged in).
    pub bridge: Arc<Mutex<Value>>,
    /// The folders, with their live sync status.
    pub folders: Vec<(FolderConfig, Arc<FolderStatus>)>,
    /// Where the index and keys are.
    pub dirs: Dirs,
    /// The token.
    pub token: String,
    /// Pauses, resumes and rescans folders.
    pub actions: FolderActions,
    /// Bytes per peer at the last sample, to compute rates.
    rates: Mutex<Rates>,
}

#[derive(Default)]
struct Rates {
    at: Option<Instant>,
    bytes: HashMap<String, (u64, u64)>,
    per_second: HashMap<String, (f64, f64)>,
}

impl Api {
    /// The API over a daemon's state.
    pub fn new(
        handle: Handle,
        device: DeviceId,
        bridge: Arc<Mutex<Value>>,
        folders: Vec<(FolderConfig, Arc<FolderStatus>)>,
        dirs: Dirs,
        token: String,
        actions: FolderActions,
    ) -> Self {
        Self {
            handle,
            device,
            bridge,
            folders,
            dirs,
            token,
            actions,
            rates: Mutex::new(Rates::default()),
        }
    }

    fn folder(&self, id: &str) -> Result<&FolderConfig, Failure> {
        self.folders
            .iter()
            .map(|(f, _)| f)
            .find(|f| f.id.to_string() == id || f.label == id)
            .ok_or_else(|| Failure(StatusCode::NOT_FOUND, format!("no folder {id}")))
    }
}

/// What the web UI may ask of a running folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderAction {
    /// Pause (`true`) or resume its worker.
    Pause(bool),
    /// Scan the whole folder now.
    Rescan,
}

/// Why a folder action did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionError {
    /// No such folder runs in this daemon.
    NotRunning,
    /// The folder's state forbids it (a rescan of a paused folder), and why.
    Refused(String),
}

/// Carries out folder actions (the daemon's side).
pub type FolderActions = Arc<
    dyn Fn(&harp_protocol::ids::FolderId, FolderAction) -> Result<(), ActionError> + Send + Sync,
>;

/// An error answer.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

type Shared = Arc<Api>;

fn loopback_host(h: &HeaderMap) -> bool {
    let Some(host) = h.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

fn authorize(api: &Api, h: &HeaderMap) -> Result<(), Failure> {
    if !loopback_host(h) {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            "the web UI answers on loopback names only".into(),
        ));
    }
    let given = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant-time comparison: the token is a secret.
    let ok = given.len() == api.token.len()
        && given
            .bytes()
            .zip(api.token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if ok {
        Ok(())
    } else {
        Err(Failure(
            StatusCode::UNAUTHORIZED,
            "a token is needed: open the address `harp ui` prints".into(),
        ))
    }
}

async fn page(h: HeaderMap) -> Response {
    if !loopback_host(&h) {
        return Failure(StatusCode::FORBIDDEN, "loopback names only".into()).into_response();
    }
    (
        [
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(PAGE),
    )
        .into_response()
}

async fn status(State(api): State<Shared>, h: HeaderMap) -> Result<axum::Json<Value>, Failure> {
    authorize(&api, &h)?;
    let listen = api.handle.listen_addrs().await.unwrap_or_default();
    let peers = api.handle.peers().await.unwrap_or_default();
    let index = crate::index::Index::open(&api.dirs.index())
        .and_then(|i| i.with_cache_mib(4))
        .ok();
    let folders: Vec<Value> = api
        .folders
        .iter()
        .map(|(f, s)| {
            let rows = index.as_ref().and_then(|i| i.files(&f.id).ok());
            let (files, conflicts) = rows.map_or((0, 0), |rows| {
                let live: Vec<_> = rows.values().filter(|r| !r.deleted).collect();
                let conflicts = live
                    .iter()
                    .filter(|r| r.path.contains(".conflict-"))
                    .count();
                (live.len(), conflicts)
            });
            json!({
                "id": f.id.to_string(),
                "label": f.label,
                "path": f.path,
                "files": files,
                "conflicts": conflicts,
                "sync": s.now(),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "device_id": api.device.to_string(),
        "listen": listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "peers": peers.len(),
        "bridge": api.bridge.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        "folders": folders,
    })))
}

async fn peers(State(api): State<Shared>, h: HeaderMap) -> Result<axum::Json<Value>, Failure> {
    authorize(&api, &h)?;
    let peers = api.handle.peers().await.map_err(anyhow::Error::from)?;
    let (direct, relayed) = api.handle.stats.direct_and_relayed();
    let mut rates = api.rates.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let elapsed = rates.at.map(|t| now.duration_since(t));
    // A fresh rate at most every second; in between, the last one.
    if elapsed.is_none_or(|e| e >= Duration::from_secs(1)) {
        let secs = elapsed.map(|e| e.as_secs_f64());
        let mut next = HashMap::new();
        for p in &peers {
            let key = p.peer.to_string();
            let (i, o) = rates
                .bytes
                .get(&key)
                .copied()
                .unwrap_or((p.bytes_in, p.bytes_out));
            if let Some(s) = secs {
                next.insert(
                    key.clone(),
                    (
                        p.bytes_in.saturating_sub(i) as f64 / s,
                        p.bytes_out.saturating_sub(o) as f64 / s,
                    ),
                );
            }
            rates.bytes.insert(key, (p.bytes_in, p.bytes_out));
        }
        rates.per_second = next;
        rates.at = Some(now);
    }
    let total = direct + relayed;
    Ok(axum::Json(json!({
        "peers": peers.iter().map(|p| {
            let (rate_in, rate_out) = rates.per_second.get(&p.peer.to_string()).copied().unwrap_or((0.0, 0.0));
            json!({
                "device": p.device.map(|d| d.to_string()),
                "direct": p.is_direct(),
                "addresses": p.connections.iter().map(|c| c.addr.to_string()).collect::<Vec<_>>(),
                "rtt_ms": p.rtt.map(|r| r.as_secs_f64() * 1000.0),
                "bytes_in": p.bytes_in,
                "bytes_out": p.bytes_out,
                "bulk_lane_bytes": p.lane_bytes,
                "in_per_second": rate_in,
                "out_per_second": rate_out,
            })
        }).collect::<Vec<_>>(),
        "bytes_direct": direct,
        "bytes_relayed": relayed,
        "direct_ratio": if total == 0 { Value::Null } else { json!(direct as f64 / total as f64) },
    })))
}

async fn conflicts(
    State(api): State<Shared>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, Failure> {
    authorize(&api, &h)?;
    let folder = api.folder(&id)?.clone();
    let dirs = api.dirs.clone();
    let list = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Value>> {
        let index = crate::index::Index::open(&dirs.index())?.with_cache_mib(4)?;
        let mut rows: Vec<_> = index
            .files(&folder.id)?
            .into_values()
            .filter(|r| !r.deleted && r.path.contains(".conflict-"))
            .collect();
        rows.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(rows
            .iter()
            .map(|r| json!({"path": r.path, "size": r.size, "mtime_ns": r.mtime_ns}))
            .collect())
    })
    .await
    .map_err(|e| anyhow::anyhow!(e))??;
    Ok(axum::Json(json!({ "conflicts": list })))
}

async fn versions(
    State(api): State<Shared>,
    h: HeaderMap,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<Value>, Failure> {
    authorize(&api, &h)?;
    let folder = api.folder(&id)?.clone();
    let path = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "path")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| Failure(StatusCode::BAD_REQUEST, "path= is needed".into()))?;
    let dirs = api.dirs.clone();
    let answer = tokio::task::spawn_blocking(move || versions_of(&dirs, &folder, &path))
        .await
        .map_err(|e| anyhow::anyhow!(e))??;
    Ok(axum::Json(answer))
}

fn versions_of(dirs: &Dirs, cfg: &FolderConfig, path: &str) -> Result<Value, Failure> {
    let node = crate::node::Node::open(dirs.clone()).map_err(anyhow::Error::from)?;
    let folder = node.open_folder(cfg).map_err(anyhow::Error::from)?;
    let index = node.index().map_err(anyhow::Error::from)?;
    let row = index
        .file(&cfg.id, path)
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| {
            Failure(
                StatusCode::NOT_FOUND,
                format!("no file {path} in {}", cfg.label),
            )
        })?;
    let entries = index
        .chain(&cfg.id, &row.file_id)
        .map_err(anyhow::Error::from)?;
    let h0 = chain::genesis(&cfg.id, &row.file_id, &folder.keys.chain_seed);
    let verified = chain::verify_chain(&cfg.id, &row.file_id, &h0, &entries);
    // Where the bridge logged each version, if this device is logged in.
    let client = crate::bridge::Credentials::load(dirs)
        .ok()
        .flatten()
        .map(|c| crate::bridge::Client::new(&c));
    let checkpoint = client.as_ref().and_then(|c| c.checkpoint(&cfg.id).ok());
    let mut head = h0;
    let mut list = Vec::new();
    for e in &entries {
        head = chain::link(&head, &e.encode());
        let logged = match (&client, &checkpoint) {
            (Some(c), Some((size, _))) => match c.log_index(&cfg.id, &row.file_id, e.seq, &head) {
                Ok(Some(i)) if i < *size => json!({"index": i, "checkpoint_size": size}),
                Ok(_) => json!(false),
                Err(_) => Value::Null,
            },
            _ => Value::Null,
        };
        list.push(json!({
            "seq": e.seq,
            "op": e.op.name(),
            "author": e.author.to_string(),
            "timestamp_ms": e.timestamp_ms,
            "size": e.size,
            "content_root": e.content_root.to_string(),
            "logged": logged,
        }));
    }
    let kept: Vec<Value> = index
        .versions(&cfg.id, path)
        .map_err(anyhow::Error::from)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            json!({"number": i + 1, "size": v.size, "kept_ms": v.kept_ms, "reason": v.reason})
        })
        .collect();
    Ok(json!({
        "path": path,
        "file_id": row.file_id.to_string(),
        "chain": list,
        "chain_verified": verified.is_ok(),
        "chain_problem": verified.err().map(|e| e.to_string()),
        "kept": kept,
    }))
}

async fn pause(
    State(api): State<Shared>,
    h: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, Failure> {
    authorize(&api, &h)?;
    let paused = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["paused"].as_bool())
        .ok_or_else(|| {
            Failure(
                StatusCode::BAD_REQUEST,
                "the body must be {\"paused\": true} or {\"paused\": false}".into(),
            )
        })?;
    act(&api, &id, FolderAction::Pause(paused))?;
    Ok(axum::Json(json!({ "paused": paused })))
}

async fn rescan(
    State(api): State<Shared>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, Failure> {
    authorize(&api, &h)?;
    act(&api, &id, FolderAction::Rescan)?;
    Ok(axum::Json(json!({ "rescan": true })))
}

fn act(api: &Api, id: &str, action: FolderAction) -> Result<(), Failure> {
    let folder = api.folder(id)?.id;
    (api.actions)(&folder, action).map_err(|e| match e {
        ActionError::NotRunning => Failure(
            StatusCode::NOT_FOUND,
            format!("folder {id} does not run in this daemon"),
        ),
        ActionError::Refused(why) => Failure(StatusCode::CONFLICT, why),
    })
}

/// Serves the page and the API on `listener` until the task is dropped.
pub async fn serve(api: Arc<Api>, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    use axum::routing::{get, post};
    let app = axum::Router::new()
        .route("/", get(page))
        .route("/api/v1/status", get(status))
        .route("/api/v1/peers", get(peers))
        .route("/api/v1/folders/{id}/conflicts", get(conflicts))
        .route("/api/v1/folders/{id}/versions", get(versions))
        .route("/api/v1/folders/{id}/pause", post(pause))
        .route("/api/v1/folders/{id}/rescan", post(rescan))
        .fallback(|| async { Failure(StatusCode::NOT_FOUND, "no such page".into()) })
        .with_state(api);
    axum::serve(listener, app)
        .await
        .context("the web UI stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_pass() {
        let with = |host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, host.parse().unwrap());
            loopback_host(&h)
        };
        assert!(with("127.0.0.1:7384") && with("localhost:1") && with("[::1]:80"));
        assert!(with("localhost"));
        assert!(!with("evil.example:7384") && !with("127.0.0.1.evil.example"));
        assert!(!loopback_host(&HeaderMap::new()));
    }
}
