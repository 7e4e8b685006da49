//! A bridge to test against, and an HTTP client that speaks its API.
//!
//! [`Target::get`] starts a fresh `harp-bridge` (own database, two users `alice` and `bob`)
//! unless `HARP_BRIDGE_URL` names one already running, such as the Nextcloud app on a real
//! Nextcloud; then `HARP_BRIDGE_USERS=alice:APP_PASSWORD,bob:APP_PASSWORD` gives two users'
//! credentials. Tests make fresh ids and keys, so they can run again against the same server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use data_encoding::BASE64;
use ed25519_dalek::{Signer, SigningKey};
use harp_protocol::ids::DeviceId;
use serde_json::{Value, json};

use crate::binary;

/// The API prefix, as in Nextcloud.
pub const PREFIX: &str = "/ocs/v2.php/apps/harpbridge/api/v1";

/// A bridge under test.
pub struct Target {
    /// `http://host:port` (no trailing slash).
    pub base: String,
    /// Two users: (login, app password).
    pub users: Vec<(String, String)>,
    /// The database of a bridge this test started.
    pub db: Option<std::path::PathBuf>,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `harp-bridge --db DB ARGS` to completion; its stdout.
pub fn bridge_cli(db: &std::path::Path, args: &[&str]) -> Result<String> {
    let out = Command::new(binary("harp-bridge")?)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .context("running harp-bridge")?;
    if !out.status.success() {
        bail!(
            "harp-bridge {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Starts `harp-bridge serve` on `db`; its base URL and process.
fn serve(db: &std::path::Path, listen: &str) -> Result<(String, Child)> {
    let mut child = Command::new(binary("harp-bridge")?)
        .arg("--db")
        .arg(db)
        .args(["serve", "--listen", listen])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting harp-bridge")?;
    let out = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("harp-bridge listening on ")
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_owned();
    Ok((base, child))
}

impl Target {
    /// The bridge named by `HARP_BRIDGE_URL`, or a fresh `harp-bridge`.
    pub fn get() -> Result<Self> {
        if let Ok(base) = std::env::var("HARP_BRIDGE_URL") {
            let users = std::env::var("HARP_BRIDGE_USERS")
                .context(
                    "HARP_BRIDGE_USERS=alice:PASSWORD,bob:PASSWORD is needed with HARP_BRIDGE_URL",
                )?
                .split(',')
                .map(|p| {
                    p.split_once(':')
                        .map(|(u, pw)| (u.to_owned(), pw.to_owned()))
                        .context("HARP_BRIDGE_USERS: user:password pairs")
                })
                .collect::<Result<Vec<_>>>()?;
            if users.len() < 2 {
                bail!("HARP_BRIDGE_USERS needs two users");
            }
            return Ok(Self {
                base: base.trim_end_matches('/').to_owned(),
                users,
                db: None,
                child: None,
                _dir: None,
            });
        }
        Self::start(&[])
    }

    /// A fresh `harp-bridge` with users alice and bob; `setup` runs first (e.g. `config`).
    pub fn start(setup: &[&[&str]]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("bridge.sqlite");
        for args in setup {
            bridge_cli(&db, args)?;
        }
        let mut users = Vec::new();
        for name in ["alice", "bob"] {
            let pw = bridge_cli(&db, &["user", "add", name])?;
            users.push((name.to_owned(), pw.trim().to_owned()));
        }
        let (base, child) = serve(&db, "127.0.0.1:0")?;
        Ok(Self {
            base,
            users,
            db: Some(db),
            child: Some(child),
            _dir: Some(dir),
        })
    }

    /// A second bridge with a copy of this one's database (the same log key, users and
    /// history), changed by `tamper` before it starts: one bridge that shows two devices two
    /// histories, as far as they can tell.
    pub fn fork(&self, tamper: impl FnOnce(&std::path::Path)) -> Result<Self> {
        let from = self.db.as_ref().context("not a bridge this test started")?;
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("bridge.sqlite");
        rusqlite::Connection::open(from)?
            .execute("VACUUM INTO ?1", [db.to_str().context("a temp path")?])?;
        tamper(&db);
        let (base, child) = serve(&db, "127.0.0.1:0")?;
        Ok(Self {
            base,
            users: self.users.clone(),
            db: Some(db),
            child: Some(child),
            _dir: Some(dir),
        })
    }

    /// Stops this bridge and starts it again on the same address and database (a test that
    /// tampers with the database does it in between: the bridge caches its logs in memory).
    pub fn restart(&mut self, between: impl FnOnce(&std::path::Path)) -> Result<()> {
        let db = self.db.clone().context("not a bridge this test started")?;
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        between(&db);
        let listen = self.base.trim_start_matches("http://").to_owned();
        let (base, child) = serve(&db, &listen)?;
        if base != self.base {
            bail!("harp-bridge did not come back on {listen}: {base}");
        }
        self.child = Some(child);
        Ok(())
    }

    /// Logs the device at `home` in to this bridge as user `n` (0: alice, 1: bob), with the
    /// user's app password; `harp login`'s output.
    pub fn login(&self, home: &std::path::Path, n: usize) -> Result<String> {
        let (user, password) = &self.users[n];
        crate::harp_ok(
            home,
            &[
                "login",
                &self.base,
                "--user",
                user,
                "--app-password",
                password,
            ],
        )
    }

    /// A client for user `n` (0: alice, 1: bob).
    pub fn client(&self, n: usize) -> Client {
        let (user, password) = self.users[n].clone();
        Client::new(&self.base, &user, &password)
    }
}

/// An answer: HTTP status and the OCS `data` (`Null` when there is no body).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `ocs.data`.
    pub data: Value,
    /// The whole body.
    pub body: Value,
}

impl Answer {
    /// The error code of a failure answer.
    pub fn error(&self) -> &str {
        self.data["error"].as_str().unwrap_or("")
    }

    /// The message of a failure answer.
    pub fn message(&self) -> &str {
        self.data["message"].as_str().unwrap_or("")
    }
}

/// One user's HTTP client.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    /// Login name.
    pub user: String,
    auth: Option<String>,
}

impl Client {
    /// A client with HTTP Basic credentials.
    pub fn new(base: &str, user: &str, password: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        Self {
            agent,
            base: base.to_owned(),
            user: user.to_owned(),
            auth: Some(format!(
                "Basic {}",
                BASE64.encode(format!("{user}:{password}").as_bytes())
            )),
        }
    }

    /// The same server without credentials.
    pub fn anonymous(&self) -> Self {
        let mut c = Self::new(&self.base, &self.user, "");
        c.auth = None;
        c
    }

    /// Sends `method PREFIX+path` with an optional raw body.
    pub fn raw(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Answer {
        let url = format!("{}{PREFIX}{path}", self.base);
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("OCS-APIRequest", "true")
            .header("Accept", "application/json");
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        if body.is_some() {
            req = req.header("Content-Type", "application/json");
        }
        let req = match req.body(body.unwrap_or_default()) {
            Ok(r) => r,
            Err(e) => panic!("building {method} {url}: {e}"),
        };
        let mut resp = match self.agent.run(req) {
            Ok(r) => r,
            Err(e) => panic!("{method} {url}: {e}"),
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let data = body["ocs"]["data"].clone();
        Answer { status, data, body }
    }

    /// GET.
    pub fn get(&self, path: &str) -> Answer {
        self.raw("GET", path, None)
    }

    /// POST a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.raw("POST", path, Some(body.to_string().into_bytes()))
    }

    /// PUT a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Answer {
        self.raw("PUT", path, Some(body.to_string().into_bytes()))
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> Answer {
        self.raw("DELETE", path, None)
    }

    /// The caller's user id as the bridge reports it.
    pub fn user_id(&self) -> String {
        let a = self.get("/capabilities");
        assert_eq!(a.status, 200, "{a:?}");
        a.data["user"].as_str().unwrap_or_default().to_owned()
    }
}

/// Random bytes.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("random bytes");
    b
}

/// A device as the tests make it: an Ed25519 identity and an X25519 public key.
pub struct Device {
    /// Signing key.
    pub key: SigningKey,
    /// X25519 public key (the bridge only stores it).
    pub x25519: [u8; 32],
}

impl Device {
    /// A fresh device.
    pub fn new() -> Self {
        Self {
            key: SigningKey::from_bytes(&random()),
            x25519: random(),
        }
    }

    /// Base32 id.
    pub fn id(&self) -> String {
        DeviceId::of_signing_key(&self.key).to_base32()
    }

    /// The registration body for user id `user`.
    pub fn registration(&self, user: &str, name: &str) -> Value {
        let id = DeviceId::of_signing_key(&self.key);
        let mut m = b"harp bridge device v1\0".to_vec();
        m.extend_from_slice(user.as_bytes());
        m.push(0);
        m.extend_from_slice(id.as_bytes());
        m.extend_from_slice(&self.x25519);
        json!({
            "device_id": self.id(),
            "name": name,
            "x25519_public": BASE64.encode(&self.x25519),
            "signature": BASE64.encode(&self.key.sign(&m).to_bytes()),
        })
    }

    /// Registers with `c`, asserting success. The device is revoked again when the returned
    /// guard drops (also when the test fails), so runs against a long-lived server (the
    /// Nextcloud app) do not pile devices up.
    #[must_use = "the device is revoked when this guard drops"]
    pub fn register<'a>(&self, c: &'a Client) -> Registered<'a> {
        let a = c.post("/devices", &self.registration(&c.user_id(), "test device"));
        assert_eq!(a.status, 201, "{a:?}");
        Registered {
            client: c,
            id: self.id(),
        }
    }

    /// A folder key "wrapped" for `to` by this device (random bytes: the bridge cannot tell).
    pub fn wrap_for(&self, folder_hex: &str, to: &str) -> Value {
        let folder = data_encoding::HEXLOWER
            .decode(folder_hex.as_bytes())
            .expect("folder hex");
        let to_id: DeviceId = to.parse().expect("device id");
        let (eph, nonce, ct) = (random::<32>(), random::<24>(), random::<48>());
        let mut m = b"harp bridge wrap v1\0".to_vec();
        m.extend_from_slice(&folder);
        m.extend_from_slice(to_id.as_bytes());
        m.extend_from_slice(&eph);
        m.extend_from_slice(&nonce);
        m.extend_from_slice(&ct);
        json!({
            "device_id": to,
            "ephemeral_public": BASE64.encode(&eph),
            "nonce": BASE64.encode(&nonce),
            "ciphertext": BASE64.encode(&ct),
            "wrapped_by": self.id(),
            "signature": BASE64.encode(&self.key.sign(&m).to_bytes()),
        })
    }
}

impl Default for Device {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh random id of `N` bytes in hex.
pub fn hex_id<const N: usize>() -> String {
    data_encoding::HEXLOWER.encode(&random::<N>())
}

/// Creates a folder owned by `c` with `device` (registered); returns its id.
pub fn create_folder(
    c: &Client,
    device: &Device,
    index_mode: &str,
    versioning: Option<&str>,
) -> String {
    let id = hex_id::<16>();
    let mut body = json!({
        "folder_id": id,
        "label": "Test folder",
        "index_mode": index_mode,
        "wrapped_key": device.wrap_for(&id, &device.id()),
    });
    if let Some(v) = versioning {
        body["versioning"] = json!(v);
    }
    let a = c.post("/folders", &body);
    assert_eq!(a.status, 201, "{a:?}");
    id
}

/// What a [`CountingProxy`] saw going to the bridge.
#[derive(Debug, Default)]
pub struct Counts {
    /// Requests.
    pub requests: std::sync::atomic::AtomicU64,
    /// Bytes of request lines and headers.
    pub header_bytes: std::sync::atomic::AtomicU64,
    /// Bytes of request bodies.
    pub body_bytes: std::sync::atomic::AtomicU64,
    /// The largest single body.
    pub max_body: std::sync::atomic::AtomicU64,
}

/// A TCP proxy in front of a bridge that counts every byte clients send it, parsed into
/// requests (headers and bodies): the test's own measure of what the bridge received.
pub struct CountingProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The counts so far.
    pub counts: std::sync::Arc<Counts>,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> Result<Self> {
        use std::net::{TcpListener, TcpStream};
        let target = upstream
            .strip_prefix("http://")
            .context("upstream must be http://")?
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}", listener.local_addr()?);
        let counts = std::sync::Arc::new(Counts::default());
        let c = counts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(std::result::Result::ok) {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (Ok(mut client_r), Ok(mut server_r)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                let (mut server_w, mut client_w) = (server, client);
                let c = c.clone();
                std::thread::spawn(move || forward_counting(&mut client_r, &mut server_w, &c));
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_r, &mut client_w);
                    let _ = client_w.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Ok(Self { url, counts })
    }
}

fn forward_counting(from: &mut std::net::TcpStream, to: &mut std::net::TcpStream, c: &Counts) {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering::Relaxed;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        // Account every complete request in the buffer.
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            c.requests.fetch_add(1, Relaxed);
            c.header_bytes.fetch_add((end + 4) as u64, Relaxed);
            c.body_bytes.fetch_add(len as u64, Relaxed);
            c.max_body.fetch_max(len as u64, Relaxed);
            buf.drain(..end + 4 + len);
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// A registered test device, revoked on drop.
pub struct Registered<'a> {
    client: &'a Client,
    id: String,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let _ = self.client.delete(&format!("/devices/{}", self.id));
    }
}
