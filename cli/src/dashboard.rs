//! The head's web dashboard: server-rendered HTML, no script or style
//! fetched from anywhere, behind the same tokens as the public Flight
//! endpoint.
//!
//! | page | what it shows |
//! | --- | --- |
//! | `/` | nodes and agents with their heartbeats, tasks (partitions) by migration, phase and state, every migration with its phases' progress |
//! | `/m/{id}` | one migration: phases (partitions, rows, rows per second, checkpoints), its live events (server-sent from `/m/{id}/events`), the certificate's verdict and checks, the receipt, the lineage of every target column |
//! | `/m/{id}/review` | the mapping entries waiting for review: candidates, confidence, reasons, sample values from the profile; approve, reject or edit the expression |
//! | `/api/status` | the cluster status document (JSON), as `sensei-cluster status --json` |
//!
//! A browser logs in once at `/login` with its token (the cookie holds it,
//! `HttpOnly`, `SameSite=Strict`); a program sends `authorization: Bearer`.
//! Reading needs a `reader` token, deciding on mapping entries a
//! `reviewer`. A decision is recorded in the migration's `mapping.json` by
//! [`sensei_agents::architect::review::record`], as `sensei review` records
//! it, with the token's name as the reviewer; when the last waiting entry is
//! decided, the migration continues on the head.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sensei_agents::architect::review::{self, Action, Decision};
use sensei_agents::artifacts::{Manifest, MappingSpec};
use sensei_runtime::tokens::{Role, TokenRecord, TokenStore};
use sensei_scheduler::{MigrationControl, Scheduler};

use crate::head::HeadControl;

/// What the dashboard reads and acts on.
#[derive(Clone)]
pub struct Dashboard {
    /// The scheduler's durable state.
    pub scheduler: Arc<Scheduler>,
    /// Status documents, and migrations continued after a review.
    pub control: Arc<HeadControl>,
    /// The working folder holding each migration's artifacts.
    pub workdir: PathBuf,
    /// The tokens admitted.
    pub tokens: TokenStore,
    /// Served over TLS: the login cookie is marked `Secure`.
    secure: bool,
}

impl Dashboard {
    /// A dashboard over a head's scheduler and control, its working folder,
    /// admitting `tokens`.
    pub fn new(
        scheduler: Arc<Scheduler>,
        control: Arc<HeadControl>,
        workdir: PathBuf,
        tokens: TokenStore,
    ) -> Self {
        Dashboard {
            scheduler,
            control,
            workdir,
            tokens,
            secure: false,
        }
    }
}

const COOKIE: &str = "sensei_token";

/// Serves the dashboard on `listener` until `shutdown`; returns its address.
/// With `tls` it serves HTTPS; without, an address beyond the loopback is
/// refused (tokens would cross the network in the clear).
pub async fn serve(
    mut dashboard: Dashboard,
    listener: tokio::net::TcpListener,
    tls: Option<&sensei_runtime::tls::ClusterTls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    dashboard.secure = tls.is_some();
    let app = Router::new()
        .route("/", get(overview))
        .route("/login", get(login_form).post(login))
        .route("/api/status", get(api_status))
        .route("/m/{id}", get(migration))
        .route("/m/{id}/events", get(events))
        .route("/m/{id}/review", get(review_page).post(decide))
        .with_state(dashboard);
    match tls {
        Some(tls) => {
            let listener = TlsListener::start(listener, tls)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "dashboard stopped");
                }
            });
        }
        None if !addr.ip().is_loopback() => anyhow::bail!(
            "the dashboard on {addr}: a listener beyond the loopback needs TLS, which is not configured; start the cluster with --tls (or --tls-cert and --tls-key), or bind 127.0.0.1"
        ),
        None => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
                    .await
                {
                    tracing::error!(error = %e, "dashboard stopped");
                }
            });
        }
    }
    Ok(addr)
}

type TlsConnection = (
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    SocketAddr,
);

/// HTTPS connections for axum: TCP connections accepted on a task of their
/// own, each handshake on its own task (a slow or silent client holds only
/// its own, for at most ten seconds), finished streams handed over.
struct TlsListener {
    addr: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<TlsConnection>,
}

impl TlsListener {
    fn start(
        listener: tokio::net::TcpListener,
        tls: &sensei_runtime::tls::ClusterTls,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.rustls_server()?);
        let (tx, ready) = tokio::sync::mpsc::channel::<TlsConnection>(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    _ = tx.closed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!(error = %e, "dashboard: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "dashboard: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "dashboard: TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { addr, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// The dashboard of `sensei migrate --dashboard`: served while the command
/// runs, behind a token made for this run and revoked when it is dropped.
pub struct LocalDashboard {
    /// `http://HOST:PORT`.
    pub url: String,
    /// The address that logs a browser in with this run's token.
    pub login_url: String,
    tokens: TokenStore,
    token_id: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Drop for LocalDashboard {
    fn drop(&mut self) {
        if let Err(e) = self.tokens.revoke(&self.token_id) {
            tracing::warn!(error = %e, "could not revoke the dashboard's token");
        }
    }
}

/// Serves the dashboard of a migration run in this process on `addr`
/// (`runtime.dashboard_addr`; None when empty) from `handle`'s runtime,
/// with an operator token of its own in `<workdir>/tokens.json`.
pub async fn serve_local(
    addr: &str,
    head: &crate::head::Head,
    handle: &tokio::runtime::Handle,
) -> anyhow::Result<Option<LocalDashboard>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let tokens = TokenStore::new(head.workdir.join("tokens.json"));
    let dashboard = Dashboard::new(
        head.scheduler.clone(),
        Arc::new(HeadControl::new(head.orchestrator.clone(), handle.clone())),
        head.workdir.clone(),
        tokens.clone(),
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let bind = addr.to_string();
    let bound = handle
        .spawn(async move {
            let listener = tokio::net::TcpListener::bind(&bind).await.map_err(|e| {
                anyhow::anyhow!("runtime.dashboard_addr {bind}: cannot listen: {e}")
            })?;
            serve(dashboard, listener, None, async move {
                let _ = rx.await;
            })
            .await
        })
        .await??;
    let (record, token) = tokens.create(
        Role::Operator,
        &format!("sensei migrate (pid {})", std::process::id()),
    )?;
    let url = format!("http://{bound}");
    Ok(Some(LocalDashboard {
        login_url: format!("{url}/login?token={token}"),
        url,
        tokens,
        token_id: record.id,
        _stop: tx,
    }))
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t} - Sensei</title><style>\
body{{font-family:sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}}th{{background:#f3f3f3}}\
.pass,.completed{{color:#16702b}}.fail,.failed,.halted{{color:#b00020}}.inconclusive,.awaiting_review,.review{{color:#a15c00}}\
.bar{{background:#e8e8e8;width:12em;height:.8em;display:inline-block}}.bar i{{background:#3a7bd5;height:100%;display:block}}\
form.inline{{display:inline}}nav a{{margin-right:1em}}</style></head><body><nav><a href=\"/\">Overview</a></nav><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    ))
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The caller's token, checked, with at least `need`; a browser without
/// one is sent to the login page.
/// (The refusal is boxed: a response is large, a token record small.)
fn authorize(d: &Dashboard, headers: &HeaderMap, need: Role) -> Result<TokenRecord, Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| cookie_token(headers));
    let Some(token) = token else {
        return Err(Box::new(Redirect::to("/login").into_response()));
    };
    let refusal = match d.tokens.authenticate(&token) {
        Ok(Some(r)) if r.role >= need => return Ok(r),
        Ok(Some(r)) => (
            StatusCode::FORBIDDEN,
            page(
                "Not allowed",
                &format!(
                    "<p>Token {} has role {}; this needs {}.</p>",
                    esc(&r.id),
                    r.role.as_str(),
                    need.as_str()
                ),
            ),
        )
            .into_response(),
        Ok(None) => Redirect::to("/login?invalid").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    Err(Box::new(refusal))
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    token: Option<String>,
}

/// The login form; `/login?token=...` logs in at once (the address
/// `sensei migrate --dashboard` prints, with a token of that run only).
async fn login_form(State(d): State<Dashboard>, Query(q): Query<LoginQuery>) -> Response {
    if let Some(token) = q.token {
        return log_in(&d, &token);
    }
    page(
        "Log in",
        "<form method=\"post\" action=\"/login\"><p>Token (<code>sensei-cluster token create --role reader|reviewer|operator</code>):</p>\
<input id=\"token\" name=\"token\" type=\"password\" size=\"90\" autocomplete=\"off\"> <button id=\"login\" type=\"submit\">Log in</button></form>",
    )
    .into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(d): State<Dashboard>, Form(f): Form<LoginForm>) -> Response {
    log_in(&d, &f.token)
}

fn log_in(d: &Dashboard, token: &str) -> Response {
    let secure = if d.secure { "; Secure" } else { "" };
    let token = token.trim();
    match d.tokens.authenticate(token) {
        Ok(Some(r)) => {
            tracing::info!(token = %r.id, role = r.role.as_str(), "dashboard login");
            (
                [(
                    header::SET_COOKIE,
                    format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}"),
                )],
                Redirect::to("/"),
            )
                .into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            page(
                "Log in",
                "<p class=\"fail\">That token is not valid (unknown, revoked or changed).</p><p><a href=\"/login\">Try again</a></p>",
            ),
        )
            .into_response(),
    }
}

async fn api_status(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&d, &headers, Role::Reader) {
        return *r;
    }
    match d.scheduler.cluster_status() {
        Ok(doc) => (
            [(header::CONTENT_TYPE, "application/json")],
            doc.to_string(),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn bar(done: u64, total: u64) -> String {
    let pct = (done * 100).checked_div(total).unwrap_or(0);
    format!("<span class=\"bar\"><i style=\"width:{pct}%\"></i></span> {done}/{total}")
}

fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn s(v: &serde_json::Value) -> String {
    esc(v.as_str().unwrap_or(""))
}

/// One row (`<tr>`) per item of the array `items`.
fn rows(items: &serde_json::Value, row: impl Fn(&serde_json::Value) -> String) -> String {
    items.as_array().into_iter().flatten().map(row).collect()
}

async fn overview(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    let who = match authorize(&d, &headers, Role::Reader) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let status = match d.scheduler.cluster_status() {
        Ok(s) => s,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut b = format!(
        "<p>Signed in as {} ({}). The page refreshes every 2 s.</p><h2>Nodes</h2><table id=\"nodes\"><tr><th>node</th><th>role</th><th>Flight</th><th>pid</th><th>last heartbeat</th></tr>",
        esc(&who.name),
        who.role.as_str()
    );
    b += &rows(&status["nodes"], |n| {
        format!(
        "<tr><td class=\"node\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms ago</td></tr>",
        s(&n["id"]),
        s(&n["role"]),
        s(&n["flight_endpoint"]),
        n["pid"],
        n["seen_ms_ago"]
        )
    });
    b += "</table><h2>Agents</h2><table id=\"agents\"><tr><th>agent</th><th>node</th><th>kind</th><th>last heartbeat</th><th>registrations</th><th>current task</th></tr>";
    b += &rows(&status["agents"], |a| {
        format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ms ago</td><td>{}</td><td>{}</td></tr>",
            s(&a["id"]),
            s(&a["node_id"]),
            s(&a["kind"]),
            a["seen_ms_ago"],
            a["registrations"],
            s(&a["current_task"])
        )
    });
    b += "</table><h2>Migrations</h2><table id=\"migrations\"><tr><th>migration</th><th>state</th><th>ingestion</th><th>transformation</th><th>verification</th><th>delivery</th></tr>";
    for m in status["migrations"].as_array().into_iter().flatten() {
        let id = m["id"].as_str().unwrap_or_default();
        let doc = d.control.status_doc(id).unwrap_or_default();
        let state = m["state"].as_str().unwrap_or_default();
        b += &format!(
            "<tr><td><a href=\"/m/{id}\">{id}</a></td><td class=\"{state}\">{state}</td>",
            id = esc(id),
            state = esc(state)
        );
        for phase in ["ingestion", "transformation", "verification", "delivery"] {
            let p = &doc["phases"][phase];
            b += &format!("<td>{}</td>", bar(u(&p["done"]), u(&p["total"])));
        }
        b += "</tr>";
    }
    b += "</table><h2>Tasks by phase and state</h2><table id=\"tasks\"><tr><th>migration</th><th>phase</th><th>state</th><th>tasks</th></tr>";
    b += &rows(&status["tasks"], |t| {
        format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s(&t["migration_id"]),
            s(&t["phase"]),
            s(&t["state"]),
            t["count"]
        )
    });
    b += "</table><script>setTimeout(function(){location.reload()},2000)</script>";
    page("Sensei cluster", &b).into_response()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

async fn migration(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&d, &headers, Role::Reader) {
        return *r;
    }
    let Ok(doc) = d.control.status_doc(&id) else {
        return (
            StatusCode::NOT_FOUND,
            page("No such migration", "<p>Unknown migration.</p>"),
        )
            .into_response();
    };
    let dir = d.workdir.join(&id);
    let state = doc["state"].as_str().unwrap_or_default();
    let created = doc["created_ms"].as_i64().unwrap_or(0);
    let mut b = format!(
        "<p>State: <b id=\"state\" class=\"{st}\">{st}</b> {err}</p>",
        st = esc(state),
        err = doc["error"]
            .as_str()
            .map(|e| format!("<span class=\"fail\">{}</span>", esc(e)))
            .unwrap_or_default()
    );
    let spec: Option<MappingSpec> = read_json(&dir.join("mapping.json"));
    let waiting = spec
        .as_ref()
        .map(sensei_agents::architect::pending)
        .unwrap_or_default();
    if !waiting.is_empty() {
        b += &format!(
            "<p class=\"review\"><a id=\"review-link\" href=\"/m/{}/review\">{} mapping entries wait for review</a></p>",
            esc(&id),
            waiting.len()
        );
    }
    b += &phases_table(&doc, created);
    b += &throughput(&d.scheduler, &id, created);
    b += &artifact_tables(&dir);
    if let Some(spec) = &spec {
        b += &lineage_table(spec);
    }
    b += &format!(
        "<h2>Events</h2><ol id=\"events\"></ol><script>\
var es=new EventSource('/m/{id}/events');es.onmessage=function(e){{var li=document.createElement('li');li.textContent=e.data;document.getElementById('events').appendChild(li)}};\
{reload}</script>",
        id = esc(&id),
        reload = if matches!(state, "running") {
            "setTimeout(function(){location.reload()},2000);"
        } else {
            ""
        }
    );
    page(&format!("Migration {id}"), &b).into_response()
}

/// The phases' progress: partitions, rows, rates, checkpoints.
fn phases_table(doc: &serde_json::Value, created: i64) -> String {
    let mut b = String::new();
    b += "<h2>Phases</h2><table id=\"phases\"><tr><th>phase</th><th>tasks</th><th>running</th><th>failed</th><th>rows</th><th>rows/s since the start</th><th>checkpoint</th></tr>";
    for phase in ["ingestion", "transformation", "verification", "delivery"] {
        let p = &doc["phases"][phase];
        let cp = &p["checkpoint"];
        let rate = match cp["recorded_ms"].as_i64() {
            Some(t) if t > created => format!(
                "{:.0}",
                u(&p["rows"]) as f64 * 1000.0 / (t - created) as f64
            ),
            _ => String::new(),
        };
        b += &format!(
            "<tr><td>{phase}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{rate}</td><td>{}</td></tr>",
            bar(u(&p["done"]), u(&p["total"])),
            p["running"],
            p["failed"],
            p["rows"],
            if cp.is_null() { String::new() } else { format!("recorded ({})", s(&cp["sha256"]).get(..12).unwrap_or("")) },
        );
    }
    b += "</table>";
    b
}

/// The certificate's checks and the receipt's tables, once written.
fn artifact_tables(dir: &std::path::Path) -> String {
    let mut b = String::new();
    if let Some(cert) = read_json::<serde_json::Value>(&dir.join("certificate.json")) {
        let p = &cert["payload"];
        b += &format!(
            "<h2>Certificate</h2><p>Verdict: <b id=\"verdict\" class=\"{v}\">{v}</b>, signed by key {}</p><table id=\"checks\"><tr><th>check</th><th>table</th><th>result</th></tr>",
            s(&p["key_id"]),
            v = esc(p["status"].as_str().unwrap_or(""))
        );
        for c in p["checks"].as_array().into_iter().flatten() {
            let r = c["result"].as_str().unwrap_or_default();
            b += &format!(
                "<tr><td>{}</td><td>{}</td><td class=\"{r}\">{r}</td></tr>",
                s(&c["check"]),
                s(&c["table"]),
                r = esc(r)
            );
        }
        b += "</table>";
    }
    if let Some(receipt) = read_json::<serde_json::Value>(&dir.join("receipt.json")) {
        b += "<h2>Receipt</h2><table id=\"receipt\"><tr><th>table</th><th>rows written</th><th>batches</th><th>rows in target</th><th>equals the certificate</th></tr>";
        for (t, r) in receipt["tables"].as_object().into_iter().flatten() {
            b += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(t),
                r["rows_written"],
                r["batches_written"],
                r["rows_in_target"],
                r["matches_certificate"]
            );
        }
        b += "</table>";
    }
    b
}

/// Where each target column comes from, with its confidence and status.
fn lineage_table(spec: &MappingSpec) -> String {
    let mut b = String::new();
    b += "<h2>Lineage</h2><table id=\"lineage\"><tr><th>target column</th><th>from</th><th>expression</th><th>confidence</th><th>status</th></tr>";
    for t in &spec.tables {
        for c in &t.columns {
            b += &format!(
                "<tr><td>{}.{}</td><td>{}</td><td><code>{}</code></td><td>{:.2}</td><td class=\"{st}\">{st}</td></tr>",
                esc(&t.target),
                esc(&c.target),
                esc(&format!("{}: {}", t.sources.join(", "), c.sources.join(", "))),
                esc(&c.expression),
                c.confidence,
                st = esc(&c.status)
            );
        }
    }
    b += "</table>";
    b
}

/// Throughput per phase over time: an inline SVG of each phase's rows done
/// (cumulative, as partitions complete) against seconds since the
/// migration was created, and each phase's best rate over one-second
/// windows.
fn throughput(scheduler: &Scheduler, id: &str, created_ms: i64) -> String {
    const PHASES: [(sensei_scheduler::Phase, &str); 4] = [
        (sensei_scheduler::Phase::Ingestion, "#1f77b4"),
        (sensei_scheduler::Phase::Transformation, "#ff7f0e"),
        (sensei_scheduler::Phase::Verification, "#2ca02c"),
        (sensei_scheduler::Phase::Delivery, "#d62728"),
    ];
    let series: Vec<_> = PHASES
        .iter()
        .map(|(p, colour)| {
            (
                *p,
                *colour,
                scheduler.completions(id, *p).unwrap_or_default(),
            )
        })
        .collect();
    let end = series
        .iter()
        .filter_map(|(_, _, c)| c.last().map(|l| l.0))
        .max()
        .unwrap_or(created_ms);
    let span = ((end - created_ms).max(1)) as f64;
    let top = series
        .iter()
        .map(|(_, _, c)| c.iter().map(|x| x.1).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (w, h) = (640.0, 200.0);
    let mut svg = format!(
        "<h2>Throughput</h2><svg id=\"throughput\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" role=\"img\"><rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#ccc\"/>",
        h + 20.0,
        h + 20.0
    );
    let mut table = String::from(
        "<table id=\"rates\"><tr><th>phase</th><th>rows</th><th>best rows/s (1 s window)</th></tr>",
    );
    for (phase, colour, points) in &series {
        // A step line: flat until a partition completes, then up by its rows.
        let mut cumulative = 0u64;
        let mut path = format!("0,{h}");
        let y = |rows: u64| h - rows as f64 / top * h;
        for (t, rows) in points {
            let x = (t - created_ms).max(0) as f64 / span * w;
            path += &format!(" {x:.1},{:.1}", y(cumulative));
            cumulative += rows;
            path += &format!(" {x:.1},{:.1}", y(cumulative));
        }
        svg += &format!(
            "<polyline class=\"{name}\" data-points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{path}\"/>",
            points.len(),
            name = phase.as_str()
        );
        // Best rate: the most rows completed within any one-second window.
        let (mut best, mut window, mut start) = (0u64, 0u64, 0usize);
        for (t, rows) in points {
            window += rows;
            while points[start].0 <= t - 1000 {
                window -= points[start].1;
                start += 1;
            }
            best = best.max(window);
        }
        table += &format!(
            "<tr><td style=\"color:{colour}\">{}</td><td>{cumulative}</td><td>{best}</td></tr>",
            phase.as_str()
        );
    }
    svg += &format!(
        "<text x=\"4\" y=\"{}\" font-size=\"12\">0 s</text><text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{:.1} s</text><text x=\"4\" y=\"14\" font-size=\"12\">{} rows</text></svg>",
        h + 16.0,
        w - 4.0,
        h + 16.0,
        span / 1000.0,
        top as u64
    );
    svg + &table + "</table>"
}

/// The migration's events as server-sent events, read from the topic
/// backend (`migration.events`, keyed by migration: the embedded log or
/// Kafka, whichever the head publishes to): the whole history, then each new
/// record (polled every 500 ms; the stream ends when the browser goes
/// away). A head without a topic backend serves the scheduler's own table.
async fn events(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    // Only holders of a token may follow a migration's events.
    if let Err(refused) = authorize(&d, &headers, Role::Reader) {
        return *refused;
    }
    let log = d.scheduler.event_log();
    let stream = futures::stream::unfold(
        (d, id, log, 0u64, std::collections::VecDeque::new()),
        |(d, id, log, mut next, mut queue)| async move {
            loop {
                if let Some(e) = queue.pop_front() {
                    let e = SseEvent::default().data(e);
                    return Some((
                        Ok::<_, std::convert::Infallible>(e),
                        (d, id, log, next, queue),
                    ));
                }
                let (found, after) = new_events(&d, &id, log.clone(), next).await;
                next = after;
                queue.extend(found);
                if queue.is_empty() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The events of migration `id` from position `next` on (a topic offset, or
/// with no topic backend an event id), as `level message` lines, and the
/// position after them.
async fn new_events(
    d: &Dashboard,
    id: &str,
    log: Option<Arc<dyn sensei_runtime::topic::EventLog>>,
    next: u64,
) -> (Vec<String>, u64) {
    let Some(log) = log else {
        let found = d
            .scheduler
            .events_since(id, next as i64)
            .unwrap_or_default();
        let after = found.last().map_or(next, |e| e.id as u64);
        return (
            found
                .into_iter()
                .map(|e| format!("{} {}", e.level, e.message))
                .collect(),
            after,
        );
    };
    let id = id.to_string();
    tokio::task::spawn_blocking(move || {
        let records = log
            .read(sensei_runtime::topic::Topic::MigrationEvents, next, 1000)
            .unwrap_or_default();
        let after = records.last().map_or(next, |r| r.offset + 1);
        let lines = records
            .iter()
            .filter(|r| r.key == id)
            .map(|r| {
                let doc: serde_json::Value = serde_json::from_slice(&r.value).unwrap_or_default();
                format!(
                    "{} {}",
                    doc["level"].as_str().unwrap_or("?"),
                    doc["message"].as_str().unwrap_or_default()
                )
            })
            .collect();
        (lines, after)
    })
    .await
    .unwrap_or_else(|_| (Vec::new(), next))
}

/// A few sample values of a source column (`table.column`, or a column of
/// one of `tables`) from the manifest's profile.
fn samples(manifest: &Option<Manifest>, tables: &[String], column: &str) -> String {
    let Some(m) = manifest else {
        return String::new();
    };
    let (only, column) = match column.rsplit_once('.') {
        Some((t, c)) => (Some(t), c),
        None => (None, column),
    };
    m.tables
        .iter()
        .filter(|t| only.map_or(tables.contains(&t.name), |o| t.name == o))
        .flat_map(|t| t.profile.columns.iter())
        .find(|c| c.column == column)
        .map(|c| {
            let top: Vec<String> = c
                .top_values
                .iter()
                .take(5)
                .map(|(v, _)| v.clone())
                .collect();
            if top.is_empty() {
                format!(
                    "{} .. {}",
                    c.min.clone().unwrap_or_default(),
                    c.max.clone().unwrap_or_default()
                )
            } else {
                top.join(", ")
            }
        })
        .unwrap_or_default()
}

async fn review_page(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let who = match authorize(&d, &headers, Role::Reader) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let dir = d.workdir.join(&id);
    let Some(spec) = read_json::<MappingSpec>(&dir.join("mapping.json")) else {
        return (
            StatusCode::NOT_FOUND,
            page("Review", "<p>This migration has no mapping spec yet.</p>"),
        )
            .into_response();
    };
    let manifest: Option<Manifest> = read_json(&dir.join("manifest.json"));
    let can_decide = who.role >= Role::Reviewer;
    let mut b = format!(
        "<p>Migration <a href=\"/m/{id}\">{id}</a>. Decisions are recorded in its mapping spec as <b>{}</b>{}.</p><table id=\"waiting\"><tr><th>entry</th><th>proposal</th><th>confidence</th><th>why</th><th>other candidates</th><th>sample values</th><th>decision</th></tr>",
        esc(&who.name),
        if can_decide { "" } else { " (a reviewer token is needed to decide)" },
        id = esc(&id)
    );
    let mut waiting = 0;
    for t in &spec.tables {
        for c in t.columns.iter().filter(|c| c.status == "review") {
            waiting += 1;
            let entry = format!("{}.{}", t.target, c.target);
            let alternatives: Vec<String> = c
                .alternatives
                .iter()
                .map(|a| format!("<code>{}</code> ({:.2})", esc(&a.expression), a.confidence))
                .collect();
            let sample = c
                .sources
                .iter()
                .map(|s| format!("{}: {}", esc(s), esc(&samples(&manifest, &t.sources, s))))
                .collect::<Vec<_>>()
                .join("<br>");
            let form = if can_decide {
                format!(
                    "<form class=\"inline\" method=\"post\"><input type=\"hidden\" name=\"entry\" value=\"{e}\"><button name=\"action\" value=\"approve\" data-entry=\"{e}\" class=\"approve\">Approve</button> <button name=\"action\" value=\"reject\" data-entry=\"{e}\">Reject</button><br><input name=\"expression\" size=\"40\" value=\"{x}\"> <button name=\"action\" value=\"edit\" data-entry=\"{e}\">Use this expression</button></form>",
                    e = esc(&entry),
                    x = esc(&c.expression)
                )
            } else {
                String::new()
            };
            b += &format!(
                "<tr class=\"entry\"><td>{}</td><td><code>{}</code></td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{form}</td></tr>",
                esc(&entry),
                esc(&c.expression),
                c.confidence,
                c.reasons.iter().map(|r| esc(r)).collect::<Vec<_>>().join("<br>"),
                alternatives.join("<br>"),
                sample
            );
        }
    }
    b += &format!("</table><p id=\"waiting-count\">{waiting} entries wait for review.</p>");
    page(&format!("Review {id}"), &b).into_response()
}

#[derive(serde::Deserialize)]
struct DecisionForm {
    entry: String,
    action: String,
    #[serde(default)]
    expression: String,
}

async fn decide(
    State(d): State<Dashboard>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<DecisionForm>,
) -> Response {
    let who = match authorize(&d, &headers, Role::Reviewer) {
        Ok(w) => w,
        Err(r) => return *r,
    };
    let action = match f.action.as_str() {
        "approve" => Action::Approve,
        "reject" => Action::Reject,
        "edit" if !f.expression.trim().is_empty() => {
            Action::Expression(f.expression.trim().to_string())
        }
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown decision {other:?} (approve, reject, or edit with an expression)"),
            )
                .into_response()
        }
    };
    let path = d.workdir.join(&id).join("mapping.json");
    let decision = Decision {
        entry: f.entry.clone(),
        action,
        why: Some("decided in the dashboard".into()),
    };
    let spec = match review::record(&path, &[decision], false, &who.name, "dashboard") {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    tracing::info!(migration = %id, entry = %f.entry, decision = %f.action, reviewer = %who.name, "mapping entry decided in the dashboard");
    if sensei_agents::architect::pending(&spec).is_empty() {
        // The last waiting entry: the migration continues on the head.
        match d.scheduler.migration_config(&id) {
            Ok(config) => {
                if let Err(e) = d.control.submit(&config, false).await {
                    return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
                }
            }
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
    Redirect::to(&format!("/m/{id}/review")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_the_cookie_found() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; sensei_token=sensei_1_2".parse().unwrap(),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("sensei_1_2"));
        assert_eq!(cookie_token(&HeaderMap::new()), None);
    }
}
