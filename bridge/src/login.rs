//! Nextcloud Login Flow v2 as `harp-bridge` serves it, so `harp login URL` works the same
//! against a Nextcloud and against a standalone bridge.
//!
//! 1. The client `POST /index.php/login/v2` and gets a poll token and a login URL.
//! 2. The user opens the login URL, signs in (user name and one of their app passwords:
//!    `harp-bridge user add|password` print them) and grants access.
//! 3. The client polls `POST /index.php/login/v2/poll` with its token; once granted it gets a
//!    new app password for the device, exactly once.
//!
//! Flows live in memory for [`FLOW_TTL`]: a restart only means logging in again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use crate::http::Shared;
use crate::rules::Failure;

/// How long a login flow waits for the user.
pub const FLOW_TTL: Duration = Duration::from_secs(20 * 60);

/// Pending and granted flows.
#[derive(Default)]
pub struct Flows {
    inner: Mutex<HashMap<String, Flow>>,
}

struct Flow {
    poll_token: String,
    started: Instant,
    granted: Option<(String, String)>,
}

fn random_token() -> Result<String, Failure> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| Failure::Internal(e.to_string()))?;
    Ok(data_encoding::BASE32_NOPAD.encode(&b).to_lowercase())
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Flows {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Flow>> {
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, f| f.started.elapsed() < FLOW_TTL);
        map
    }
}

/// `POST /index.php/login/v2`.
pub async fn start(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let (Ok(login_token), Ok(poll_token)) = (random_token(), random_token()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut flows = app.flows.lock();
    if flows.len() > 10_000 {
        return (StatusCode::TOO_MANY_REQUESTS, "too many pending logins").into_response();
    }
    flows.insert(
        login_token.clone(),
        Flow {
            poll_token: poll_token.clone(),
            started: Instant::now(),
            granted: None,
        },
    );
    let base = base_url(&headers);
    axum::Json(json!({
        "poll": { "token": poll_token, "endpoint": format!("{base}/index.php/login/v2/poll") },
        "login": format!("{base}/index.php/login/v2/flow/{login_token}"),
    }))
    .into_response()
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;max-width:28em;margin:4em auto}}\
         input{{display:block;margin:.5em 0;padding:.4em;width:100%}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    ))
}

/// `GET /index.php/login/v2/flow/{token}`: the sign-in form.
pub async fn form(State(app): State<Shared>, Path(token): Path<String>) -> Response {
    if !app.flows.lock().contains_key(&token) {
        return (
            StatusCode::NOT_FOUND,
            page("Login expired", "<p>Start again from your device.</p>"),
        )
            .into_response();
    }
    page(
        "Connect a Harp device",
        "<p>A device asks for access to your Harp bridge account. Sign in to grant it its own \
         app password.</p><form method=\"post\">\
         <label>User <input name=\"user\" autocomplete=\"username\"></label>\
         <label>App password <input name=\"password\" type=\"password\" autocomplete=\"current-password\"></label>\
         <input type=\"submit\" value=\"Grant access\"></form>",
    )
    .into_response()
}

fn form_fields(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|p| p.split_once('='))
        .filter_map(|(k, v)| {
            Some((
                crate::http::percent_decode(k).ok()?,
                crate::http::percent_decode(v).ok()?,
            ))
        })
        .collect()
}

/// `POST /index.php/login/v2/flow/{token}`: checks the credentials and grants the flow.
pub async fn grant(
    State(app): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if body.len() > 8192 {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let fields = form_fields(&body);
    let user = fields.get("user").cloned().unwrap_or_default();
    let password = fields.get("password").cloned().unwrap_or_default();
    let app2 = app.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<String, Failure> {
        if app2.throttled(peer.ip()) {
            return Err(Failure::RateLimited);
        }
        match app2.bridge().authenticate(&user, &password) {
            Ok(u) => app2
                .bridge()
                .add_app_password(&u, "login flow")
                .map(|pw| format!("{u}\n{pw}")),
            Err(e) => {
                app2.failed(peer.ip());
                Err(e)
            }
        }
    })
    .await
    .unwrap_or_else(|e| Err(Failure::Internal(e.to_string())));
    match result {
        Ok(both) => {
            let (user, pw) = both.split_once('\n').unwrap_or_default();
            let mut flows = app.flows.lock();
            let Some(flow) = flows.get_mut(&token) else {
                return (
                    StatusCode::NOT_FOUND,
                    page("Login expired", "<p>Start again from your device.</p>"),
                )
                    .into_response();
            };
            flow.granted = Some((user.to_owned(), pw.to_owned()));
            page(
                "Access granted",
                &format!(
                    "<p>The device is connected as {}. You can close this window.</p>",
                    escape(user)
                ),
            )
            .into_response()
        }
        Err(Failure::RateLimited) => (
            StatusCode::TOO_MANY_REQUESTS,
            page("Too many attempts", "<p>Wait a minute.</p>"),
        )
            .into_response(),
        Err(Failure::Unauthorized) => (
            StatusCode::UNAUTHORIZED,
            page(
                "Wrong user or app password",
                "<p>Go back and try again.</p>",
            ),
        )
            .into_response(),
        Err(e) => {
            tracing::error!("login flow: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `POST /index.php/login/v2/poll` (form `token=`): 404 until granted, then the credentials,
/// once.
pub async fn poll(
    State(app): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let token = form_fields(&body).remove("token").unwrap_or_default();
    let mut flows = app.flows.lock();
    let Some(login_token) = flows
        .iter()
        .find(|(_, f)| f.poll_token == token && f.granted.is_some())
        .map(|(k, _)| k.clone())
    else {
        return (StatusCode::NOT_FOUND, axum::Json(json!([]))).into_response();
    };
    let Some(Flow {
        granted: Some((user, pw)),
        ..
    }) = flows.remove(&login_token)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    axum::Json(json!({ "server": base_url(&headers), "loginName": user, "appPassword": pw }))
        .into_response()
}
