//! The HTTP face of the bridge: the paths of the Nextcloud app, OCS v2 envelopes, HTTP Basic
//! with app passwords, and a throttle on failed logins.
//!
//! Handlers are thin: they authenticate, read the body (bounded), and hand one call to
//! [`Bridge`] on a blocking thread (SQLite is synchronous).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use crate::rules::{Bridge, Failure};
use crate::wire::{self, MAX_BODY};

/// Where the API lives, as in Nextcloud.
pub const API_PREFIX: &str = "/ocs/v2.php/apps/harpbridge/api/v1";

/// Failed logins allowed per address per minute before answers become 429.
const FAILED_LOGINS_PER_MINUTE: u32 = 20;

/// Shared state of the handlers.
pub struct App {
    bridge: Bridge,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    pub(crate) flows: crate::login::Flows,
}

impl App {
    /// Serves `bridge`.
    pub fn new(bridge: Bridge) -> Arc<Self> {
        Arc::new(Self {
            bridge,
            failures: Mutex::new(HashMap::new()),
            flows: crate::login::Flows::default(),
        })
    }

    pub(crate) fn bridge(&self) -> &Bridge {
        &self.bridge
    }

    pub(crate) fn throttled(&self, ip: IpAddr) -> bool {
        let map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&ip).is_some_and(|(since, n)| {
            since.elapsed() < Duration::from_secs(60) && *n >= FAILED_LOGINS_PER_MINUTE
        })
    }

    pub(crate) fn failed(&self, ip: IpAddr) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 100_000 {
            map.retain(|_, (since, _)| since.elapsed() < Duration::from_secs(60));
        }
        let e = map.entry(ip).or_insert((Instant::now(), 0));
        if e.0.elapsed() >= Duration::from_secs(60) {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
    }
}

pub(crate) type Shared = Arc<App>;
type Answer = Result<(StatusCode, Value), Failure>;

/// The router with every API path.
pub fn router(app: Shared) -> Router {
    let api = Router::new()
        .route("/capabilities", get(capabilities))
        .route("/devices", get(list_devices).post(register_device))
        .route("/devices/{device}", get(get_device).delete(revoke_device))
        .route("/devices/{device}/addresses", put(publish_addresses))
        .route("/folders", get(list_folders).post(create_folder))
        .route("/folders/{folder}", get(get_folder))
        .route("/folders/{folder}/members", post(add_member))
        .route(
            "/folders/{folder}/members/{user}",
            axum::routing::delete(remove_member),
        )
        .route(
            "/folders/{folder}/keys/{device}",
            get(get_wrapped_key).put(put_wrapped_key),
        )
        .route(
            "/folders/{folder}/changes",
            get(read_changes).post(append_changes),
        )
        .route(
            "/folders/{folder}/files/{file}/entries",
            get(read_entries).post(append_entry),
        )
        .route("/folders/{folder}/index", get(search_index).put(put_index))
        .route("/folders/{folder}/checkpoint", get(checkpoint))
        .route("/folders/{folder}/log/inclusion", get(inclusion))
        .route("/folders/{folder}/log/consistency", get(consistency))
        .route(
            "/folders/{folder}/checkpoint/cosignatures",
            post(add_cosignature),
        )
        .fallback(|| async { envelope(Err(Failure::NotFound("no such endpoint".into()))) });
    Router::new()
        .nest(API_PREFIX, api)
        .route("/index.php/login/v2", post(crate::login::start))
        .route(
            "/index.php/login/v2/flow/{token}",
            get(crate::login::form).post(crate::login::grant),
        )
        .route("/index.php/login/v2/poll", post(crate::login::poll))
        .fallback(|| async { envelope(Err(Failure::NotFound("no such endpoint".into()))) })
        .with_state(app)
}

/// Turns an answer into an OCS v2 response (the HTTP status mirrors `statuscode`).
fn envelope(answer: Answer) -> Response {
    let (status, data, message) = match answer {
        Ok((StatusCode::NO_CONTENT, _)) => return StatusCode::NO_CONTENT.into_response(),
        Ok((s, v)) => (s, v, "OK".to_owned()),
        Err(f) => {
            let (status, code) = match &f {
                Failure::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
                Failure::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                Failure::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
                Failure::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
                Failure::Conflict(_) | Failure::HeadMoved { .. } => {
                    (StatusCode::CONFLICT, "conflict")
                }
                Failure::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
                Failure::Internal(detail) => {
                    tracing::error!("{detail}");
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                }
            };
            let message = f.to_string();
            let mut data = json!({ "error": code, "message": message });
            if let Failure::HeadMoved { head, seq } = &f {
                data["head"] = json!(head.map(|h| h.to_hex()));
                data["seq"] = json!(seq);
            }
            (status, data, message)
        }
    };
    let ok = status.is_success();
    let body = json!({
        "ocs": {
            "meta": {
                "status": if ok { "ok" } else { "failure" },
                "statuscode": status.as_u16(),
                "message": message,
            },
            "data": data,
        }
    });
    let mut resp = (status, axum::Json(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"Harp bridge\""),
        );
    }
    resp
}

/// The caller's user id from HTTP Basic, or why not.
fn authenticate(app: &App, headers: &HeaderMap, ip: IpAddr) -> Result<String, Failure> {
    if app.throttled(ip) {
        return Err(Failure::RateLimited);
    }
    let creds = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| data_encoding::BASE64.decode(b.trim().as_bytes()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = creds.as_deref().and_then(|c| c.split_once(':')) else {
        return Err(Failure::Unauthorized);
    };
    match app.bridge.authenticate(user, password) {
        Ok(u) => Ok(u),
        Err(Failure::Unauthorized) => {
            app.failed(ip);
            tracing::info!(%ip, user, "failed login");
            Err(Failure::Unauthorized)
        }
        Err(e) => Err(e),
    }
}

/// Authenticates, reads the body, and runs `f` on a blocking thread.
async fn run<F>(
    app: Shared,
    headers: HeaderMap,
    peer: SocketAddr,
    body: Option<Body>,
    f: F,
) -> Response
where
    F: FnOnce(&Bridge, &str, &[u8]) -> Answer + Send + 'static,
{
    let bytes = match body {
        Some(b) => match read_body(b).await {
            Ok(b) => b,
            Err(f) => return envelope(Err(f)),
        },
        None => Vec::new(),
    };
    let answer = tokio::task::spawn_blocking(move || {
        let user = authenticate(&app, &headers, peer.ip())?;
        f(&app.bridge, &user, &bytes)
    })
    .await
    .unwrap_or_else(|e| Err(Failure::Internal(format!("handler: {e}"))));
    envelope(answer)
}

/// Bytes of an oversized body read (and dropped) before answering 413, so that a client still
/// sending gets the answer instead of a broken pipe; beyond it the connection is cut.
const DRAIN_LIMIT: usize = 64 << 20;

/// Reads a request body of at most [`MAX_BODY`] bytes; a larger one is drained (up to
/// [`DRAIN_LIMIT`]) without being kept, then refused.
async fn read_body(mut body: Body) -> Result<Vec<u8>, Failure> {
    use http_body_util::BodyExt;
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::Invalid(format!("body: {e}")))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        total += data.len();
        if total <= MAX_BODY {
            kept.extend_from_slice(data);
        } else if total > DRAIN_LIMIT {
            break;
        }
    }
    if total > MAX_BODY {
        return Err(Failure::TooLarge(format!(
            "the body is over {MAX_BODY} bytes"
        )));
    }
    Ok(kept)
}

fn ok(v: impl serde::Serialize) -> Answer {
    Ok((
        StatusCode::OK,
        serde_json::to_value(v).map_err(|e| Failure::Internal(e.to_string()))?,
    ))
}

fn created(new: bool, v: impl serde::Serialize) -> Answer {
    let (_, v) = ok(v)?;
    Ok((
        if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        v,
    ))
}

fn no_content() -> Answer {
    Ok((StatusCode::NO_CONTENT, Value::Null))
}

/// Query parameters; repeated keys keep every value.
fn query(raw: Option<String>) -> Result<HashMap<String, Vec<String>>, Failure> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    let raw = raw.unwrap_or_default();
    if raw.len() > 8192 {
        return Err(Failure::TooLarge("query: over 8192 bytes".into()));
    }
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(percent_decode(k)?)
            .or_default()
            .push(percent_decode(v)?);
    }
    Ok(out)
}

pub(crate) fn percent_decode(s: &str) -> Result<String, Failure> {
    let bad = || Failure::Invalid("query: bad percent-encoding".into());
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn int_param(q: &HashMap<String, Vec<String>>, name: &str, default: i64) -> Result<i64, Failure> {
    match q.get(name).and_then(|v| v.first()) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| Failure::Invalid(format!("{name}: not an integer"))),
    }
}

// --- handlers ------------------------------------------------------------------------------

type Conn = ConnectInfo<SocketAddr>;

async fn capabilities(State(app): State<Shared>, ConnectInfo(p): Conn, h: HeaderMap) -> Response {
    run(app, h, p, None, |b, u, _| ok(b.capabilities(u, true))).await
}

async fn list_devices(State(app): State<Shared>, ConnectInfo(p): Conn, h: HeaderMap) -> Response {
    run(app, h, p, None, |b, u, _| ok(b.list_devices(u)?)).await
}

async fn register_device(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    body: Body,
) -> Response {
    run(app, h, p, Some(body), |b, u, body| {
        let (d, new) = b.register_device(u, &wire::parse(body)?)?;
        created(new, d)
    })
    .await
}

async fn get_device(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(device): Path<String>,
) -> Response {
    run(
        app,
        h,
        p,
        None,
        move |b, u, _| ok(b.get_device(u, &device)?),
    )
    .await
}

async fn revoke_device(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(device): Path<String>,
) -> Response {
    run(app, h, p, None, move |b, u, _| {
        b.revoke_device(u, &device)?;
        no_content()
    })
    .await
}

async fn publish_addresses(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(device): Path<String>,
    body: Body,
) -> Response {
    run(app, h, p, Some(body), move |b, u, body| {
        b.publish_addresses(u, &device, &wire::parse(body)?)?;
        no_content()
    })
    .await
}

async fn list_folders(State(app): State<Shared>, ConnectInfo(p): Conn, h: HeaderMap) -> Response {
    run(app, h, p, None, |b, u, _| ok(b.list_folders(u)?)).await
}

async fn create_folder(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    body: Body,
) -> Response {
    run(app, h, p, Some(body), |b, u, body| {
        created(true, b.create_folder(u, &wire::parse(body)?)?)
    })
    .await
}

async fn get_folder(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(folder): Path<String>,
) -> Response {
    run(
        app,
        h,
        p,
        None,
        move |b, u, _| ok(b.get_folder(u, &folder)?),
    )
    .await
}

async fn add_member(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(folder): Path<String>,
    body: Body,
) -> Response {
    run(app, h, p, Some(body), move |b, u, body| {
        // 201 whether the user was new or already a member (sharing is idempotent).
        b.add_member(u, &folder, &wire::parse(body)?)?;
        created(true, b.get_folder(u, &folder)?)
    })
    .await
}

async fn remove_member(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path((folder, user)): Path<(String, String)>,
) -> Response {
    run(app, h, p, None, move |b, u, _| {
        b.remove_member(u, &folder, &user)?;
        no_content()
    })
    .await
}

async fn get_wrapped_key(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path((folder, device)): Path<(String, String)>,
) -> Response {
    run(app, h, p, None, move |b, u, _| {
        ok(b.get_wrapped_key(u, &folder, &device)?)
    })
    .await
}

async fn put_wrapped_key(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path((folder, device)): Path<(String, String)>,
    body: Body,
) -> Response {
    run(app, h, p, Some(body), move |b, u, body| {
        b.put_wrapped_key(u, &folder, &device, &wire::parse(body)?)?;
        no_content()
    })
    .await
}

async fn append_changes(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(folder): Path<String>,
    body: Body,
) -> Response {
    run(app, h, p, Some(body), move |b, u, body| {
        let cursor = b.append_changes(u, &folder, &wire::parse(body)?)?;
        ok(json!({ "cursor": cursor }))
    })
    .await
}

async fn read_changes(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(folder): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    run(app, h, p, None, move |b, u, _| {
        let q = query(raw)?;
        let page = b.read_changes(
            u,
            &folder,
            int_param(&q, "after", 0)?,
            int_param(&q, "limit", 200)?,
        )?;
        ok(page)
    })
    .await
}

async fn read_entries(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path((folder, file)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    run(app, h, p, None, move |b, u, _| {
        let q = query(raw)?;
        ok(b.read_entries(
            u,
            &folder,
            &file,
            int_param(&q, "from_seq", 1)?,
            int_param(&q, "limit", 1000)?,
        )?)
    })
    .await
}

async fn append_entry(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path((folder, file)): Path<(String, String)>,
    body: Body,
) -> Response {
    run(app, h, p, Some(body), move |b, u, body| {
        let (link, new) = b.append_entry(u, &folder, &file, &wire::parse(body)?)?;
        created(new, link)
    })
    .await
}

async fn put_index(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(folder): Path<String>,
    body: Body,
) -> Response {
    run(app, h, p, Some(body), move |b, u, body| {
        b.put_index(u, &folder, &wire::parse(body)?)?;
        no_content()
    })
    .await
}

async fn search_index(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(folder): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    run(app, h, p, None, move |b, u, _| {
        let q = query(raw)?;
        let text = q.get("q").and_then(|v| v.first()).map(String::as_str);
        let mut tokens = q.get("token").cloned().unwrap_or_default();
        tokens.extend(q.get("token[]").cloned().unwrap_or_default());
        ok(b.search_index(u, &folder, text, &tokens)?)
    })
    .await
}

async fn checkpoint(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(folder): Path<String>,
) -> Response {
    run(app, h, p, None, move |b, u, _| {
        let (size, note) = b.checkpoint(u, &folder)?;
        ok(json!({ "size": size, "note": note }))
    })
    .await
}

async fn add_cosignature(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(folder): Path<String>,
    body: Body,
) -> Response {
    run(app, h, p, Some(body), move |b, u, body| {
        b.add_cosignature(u, &folder, &wire::parse(body)?)?;
        no_content()
    })
    .await
}

fn u64_param(q: &HashMap<String, Vec<String>>, name: &str) -> Result<u64, Failure> {
    q.get(name)
        .and_then(|v| v.first())
        .ok_or_else(|| Failure::Invalid(format!("{name}: required")))?
        .parse()
        .map_err(|_| Failure::Invalid(format!("{name}: not a non-negative integer")))
}

async fn inclusion(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(folder): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    run(app, h, p, None, move |b, u, _| {
        let q = query(raw)?;
        let (index, size) = (u64_param(&q, "index")?, u64_param(&q, "size")?);
        let proof = b.inclusion(u, &folder, index, size)?;
        ok(json!({ "index": index, "size": size, "proof": proof }))
    })
    .await
}

async fn consistency(
    State(app): State<Shared>,
    ConnectInfo(p): Conn,
    h: HeaderMap,
    Path(folder): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    run(app, h, p, None, move |b, u, _| {
        let q = query(raw)?;
        let (old, new) = (u64_param(&q, "old")?, u64_param(&q, "new")?);
        let proof = b.consistency(u, &folder, old, new)?;
        ok(json!({ "old": old, "new": new, "proof": proof }))
    })
    .await
}

/// Serves `app` on `listener` until the process ends.
pub async fn serve(app: Shared, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
