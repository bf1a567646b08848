//! The routes of `toolenv serve` and their status codes.
//!
//! - `GET /health`, `GET /metrics`, `GET /v1/tools` (the OpenAI `tools` array).
//! - `POST /v1/sessions` `{id?, seed?, ttl_s?}` → 201 `{id, seed, ttl_s}`; `POST
//!   /v1/sessions/{id}` `{seed?, ttl_s?}` the same with the id in the path (what a balancer hashing
//!   on the path can route); `DELETE /v1/sessions/{id}` → 204.
//! - `POST /v1/sessions/{id}/calls` `{calls: [{id?, name, arguments}]}` (or chat-completions
//!   `tool_calls` entries, `{id, type, function: {name, arguments}}`) → one result per call, in
//!   order.
//! - `POST /v1/sessions/{id}/step` `{text}` → the turn's observation, calls, results, errors and
//!   whether the episode is done ([`Roller::step`](crate::rollout::Roller::step)).
//! - `POST /v1/reward` `{items: [{text, ground_truth, step?, variant?}]}` → ToolRL's terms.
//! - `POST /get_observation`: VerlTool's tool-server shape.
//!
//! What the model caused is a 200 with a typed error per call; a request that is not what the
//! route reads is a 400 that names the field; 404 an unknown route or session to delete; 413 a
//! body over the limit; 429 (with `Retry-After`) a full queue or session table; 401 a missing or
//! wrong bearer token; 408 a body not received within the body timeout, or a request over its
//! time.

use super::sessions::{Session, SessionError, SessionSpec};
use super::wire::{self, RewardItem};
use super::Server;
use crate::reward::{GroundTruth, Rubric};
use crate::rollout::{RolloutError, TurnStep};
use crate::tir::{parse_turn, ToolCall};
use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

type Shared = Arc<Server>;

/// The service: every route with its limits, timeouts, authentication and accounting.
pub fn router(server: Shared) -> Router {
    let options = &server.options;
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/v1/tools", get(tools))
        .route("/v1/sessions", post(create_session))
        .route(
            "/v1/sessions/{id}",
            post(create_named_session).delete(delete_session),
        )
        .route("/v1/sessions/{id}/calls", post(calls))
        .route("/v1/sessions/{id}/step", post(step))
        .route("/v1/reward", post(reward))
        .route("/get_observation", post(get_observation))
        .route_layer(middleware::from_fn_with_state(server.clone(), authorize));
    Router::new()
        .route("/health", get(health))
        .merge(protected)
        .route_layer(middleware::from_fn_with_state(server.clone(), account))
        .fallback(not_found)
        // A declared length over the limit is refused before any of the body is read.
        .layer(RequestBodyLimitLayer::new(options.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        .with_state(server)
}

/// A request the server will not or cannot answer with a result.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is not what the route reads.
    BadRequest(String),
    /// 404.
    NotFound(String),
    /// 409: the session exists.
    Conflict(String),
    /// 413: the body is over the limit.
    TooLarge(String),
    /// 408: the body did not arrive in time.
    Timeout(String),
    /// 429: the queue or the session table is full.
    Busy(String),
    /// 401.
    Unauthorized,
    /// 500: our fault (a state directory that cannot be made, a worker that died).
    Host(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", m.clone()),
            ApiError::Timeout(m) => (StatusCode::REQUEST_TIMEOUT, "timeout", m.clone()),
            ApiError::Busy(m) => (StatusCode::TOO_MANY_REQUESTS, "busy", m.clone()),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required: Authorization: Bearer <token>".into(),
            ),
            ApiError::Host(m) => (StatusCode::INTERNAL_SERVER_ERROR, "host", m.clone()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, message) = self.parts();
        let mut response = (
            status,
            Json(json!({"error": {"kind": kind, "message": message}})),
        )
            .into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Busy(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Exists(_) => ApiError::Conflict(e.to_string()),
            SessionError::Full(_) => ApiError::Busy(e.to_string()),
            SessionError::BadId(_) => ApiError::BadRequest(e.to_string()),
        }
    }
}

impl From<RolloutError> for ApiError {
    fn from(e: RolloutError) -> Self {
        ApiError::Host(e.to_string())
    }
}

/// Reads a JSON body into `T` within the body timeout (the whole body, however slowly it
/// trickles in) and the size limit; a failure names the field (`calls[2].name: …`).
async fn parse<T: DeserializeOwned>(server: &Server, body: Body) -> Result<T, ApiError> {
    let (limit, timeout) = (server.options.max_body_bytes, server.options.body_timeout);
    let body = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => {
            return Err(ApiError::Timeout(format!(
                "body: not received within {} s",
                timeout.as_secs_f64()
            )))
        }
        Ok(Err(e)) if over_limit(&e) => {
            return Err(ApiError::TooLarge(format!(
                "body: larger than the limit of {limit} bytes"
            )))
        }
        Ok(Err(e)) => return Err(ApiError::BadRequest(format!("body: cannot be read: {e}"))),
        Ok(Ok(body)) => body,
    };
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            ApiError::BadRequest(format!("body: {}", e.inner()))
        } else {
            ApiError::BadRequest(format!("{path}: {}", e.inner()))
        }
    })
}

fn over_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

async fn authorize(State(server): State<Shared>, request: Request, next: Next) -> Response {
    if let Some(token) = &server.options.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        // Digests compared, so the time taken says nothing about how much of a guess was right.
        if Sha256::digest(given.as_bytes()) != Sha256::digest(token.as_bytes()) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

async fn account(State(server): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    server.metrics.request(&route, response.status().as_u16());
    response
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound(format!(
        "no route {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn health(State(server): State<Shared>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "tools": server.registry().tools().len(),
        "sessions": server.sessions.len(),
    }))
}

async fn metrics(State(server): State<Shared>) -> Response {
    server.metrics.sessions.set(server.sessions.len() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        server.metrics.render(),
    )
        .into_response()
}

async fn tools(State(server): State<Shared>) -> Json<Value> {
    Json(Value::Array(server.registry().openai_tools()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    ttl_s: Option<f64>,
}

async fn create_session(State(server): State<Shared>, body: Body) -> Result<Response, ApiError> {
    let request: SessionRequest = parse(&server, body).await?;
    open_session(&server, request)
}

async fn create_named_session(
    State(server): State<Shared>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let mut request: SessionRequest = parse(&server, body).await?;
    if request.id.as_ref().is_some_and(|given| *given != id) {
        return Err(ApiError::BadRequest(
            "id: differs from the id in the path".into(),
        ));
    }
    request.id = Some(id);
    open_session(&server, request)
}

fn open_session(server: &Server, request: SessionRequest) -> Result<Response, ApiError> {
    let ttl = match request.ttl_s {
        Some(s) if !(s.is_finite() && s > 0.0 && s <= 7.0 * 86_400.0) => {
            return Err(ApiError::BadRequest(format!(
                "ttl_s: must be a number of seconds in (0, 604800], got {s}"
            )))
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let session = server.sessions.create(SessionSpec {
        id: request.id,
        seed: request.seed,
        ttl,
    })?;
    server.metrics.sessions.set(server.sessions.len() as i64);
    let body = json!({
        "id": session.id,
        "seed": session.episode.seed(),
        "ttl_s": ttl.unwrap_or(server.options.session_ttl).as_secs_f64(),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn delete_session(
    State(server): State<Shared>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if server.sessions.remove(&id) {
        server.metrics.sessions.set(server.sessions.len() as i64);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no session `{id}`")))
    }
}

/// The live session `id`, created if unknown; the flag says whether it was.
fn session(server: &Server, id: &str) -> Result<(Arc<Session>, bool), ApiError> {
    let (session, created) = server.sessions.get_or_create(id)?;
    if created {
        server.metrics.sessions.set(server.sessions.len() as i64);
    }
    Ok((session, created))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallsRequest {
    calls: Vec<CallItem>,
}

/// One call: ours (`name`, `arguments`) or a chat-completions `tool_calls` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallItem {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
    #[serde(default, rename = "type")]
    _kind: Option<String>,
    #[serde(default)]
    function: Option<FunctionCall>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    arguments: Option<Value>,
}

async fn calls(
    State(server): State<Shared>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let request: CallsRequest = parse(&server, body).await?;
    let limit = server.options.max_calls_per_request;
    if request.calls.len() > limit {
        return Err(ApiError::BadRequest(format!(
            "calls: {} calls, at most {limit} per request",
            request.calls.len()
        )));
    }
    let mut items = Vec::with_capacity(request.calls.len());
    for (i, item) in request.calls.into_iter().enumerate() {
        let (name, arguments) = match (item.name, item.function) {
            (Some(name), None) => (name, item.arguments),
            (None, Some(f)) if item.arguments.is_none() => (f.name, f.arguments),
            (Some(_), Some(_)) => {
                return Err(ApiError::BadRequest(format!(
                    "calls[{i}]: give `name` or `function`, not both"
                )))
            }
            _ => return Err(ApiError::BadRequest(format!("calls[{i}]: missing `name`"))),
        };
        items.push((item.id.unwrap_or(Value::Null), name, arguments));
    }
    let _admitted = server
        .admit(items.len())
        .ok_or_else(|| ApiError::Busy("the call queue is full; retry later".into()))?;
    let (session, created) = session(&server, &id)?;
    let _order = session.order.lock().await;

    let mut results: Vec<Value> = Vec::with_capacity(items.len());
    let mut runnable = Vec::new();
    for (i, (_, name, arguments)) in items.iter().enumerate() {
        match wire::arguments(arguments.as_ref()) {
            Ok(map) => {
                runnable.push((i, ToolCall::new(name.clone(), map)));
                results.push(Value::Null);
            }
            Err(message) => {
                server
                    .metrics
                    .call(tool_label(&server, name), "parse", Duration::ZERO);
                results.push(wire::error("parse", message));
            }
        }
    }
    let (at, calls): (Vec<usize>, Vec<ToolCall>) = runnable.into_iter().unzip();
    let names: Vec<String> = calls.iter().map(|c| c.name.clone()).collect();
    let outcomes = server.roller.call_all(calls, &session.episode, &id).await?;
    for ((i, name), outcome) in at.into_iter().zip(names).zip(outcomes) {
        let kind = outcome.result.as_ref().err().map_or("ok", |e| e.kind());
        server
            .metrics
            .call(tool_label(&server, &name), kind, outcome.elapsed);
        let mut value = wire::outcome(&outcome);
        value["fuel"] = json!(outcome.fuel_used);
        value["us"] = json!(outcome.elapsed.as_micros() as u64);
        results[i] = value;
    }
    for ((call_id, _, _), result) in items.into_iter().zip(results.iter_mut()) {
        if let Value::Object(map) = result {
            map.insert("id".into(), call_id);
        }
    }
    session.touch();
    Ok(Json(json!({
        "session": id,
        "created": created,
        "results": results,
    })))
}

/// The metrics label of a called name: unknown names share one label, so a model inventing
/// names cannot grow the metrics without bound.
fn tool_label<'a>(server: &'a Server, name: &str) -> &'a str {
    server
        .registry()
        .tool(name)
        .map_or("_unknown", |t| t.def.name.as_str())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepRequest {
    text: String,
}

/// One turn of session `session` through the rollout core, counted in the metrics.
async fn step_session(
    server: &Shared,
    session: &Session,
    text: &str,
) -> Result<(TurnStep, usize, bool), ApiError> {
    let lines = parse_turn(text).tool_calls.map_or(0, |l| l.len());
    let _admitted = server
        .admit(lines.min(server.options.rollout.max_calls_per_turn))
        .ok_or_else(|| ApiError::Busy("the call queue is full; retry later".into()))?;
    let _order = session.order.lock().await;
    let turn = session.next_turn();
    let step = server
        .roller
        .step(&session.episode, text, &session.id)
        .await?;
    for call in &step.calls {
        let name = call.name.as_deref().unwrap_or("");
        let kind = call.error.as_ref().map_or("ok", |e| e.kind.as_str());
        let elapsed = Duration::from_micros(call.elapsed_us);
        server.metrics.call(tool_label(server, name), kind, elapsed);
    }
    let done = server.roller.done_after(turn, &step);
    session.touch();
    Ok((step, turn, done))
}

async fn step(
    State(server): State<Shared>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let request: StepRequest = parse(&server, body).await?;
    let (session, created) = session(&server, &id)?;
    let (step, turn, done) = step_session(&server, &session, &request.text).await?;
    let mut answer = wire::step(&step, turn, done);
    answer["session"] = json!(id);
    answer["created"] = json!(created);
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RewardRequest {
    items: Vec<RewardItem>,
}

async fn reward(State(server): State<Shared>, body: Body) -> Result<Json<Value>, ApiError> {
    let request: RewardRequest = parse(&server, body).await?;
    let scores = tokio::task::spawn_blocking(move || score_items(request.items))
        .await
        .map_err(|e| ApiError::Host(format!("the scorer failed: {e}")))?;
    Ok(Json(json!({ "scores": scores })))
}

/// Scores each item; an item that cannot be scored (unknown variant, a ground truth whose calls
/// are not JSON) gets an error entry and the rest are still scored.
fn score_items(items: Vec<RewardItem>) -> Vec<Value> {
    let mut rubrics: HashMap<String, Rubric> = HashMap::new();
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let variant = item.variant.unwrap_or_else(|| "default".into());
            if !rubrics.contains_key(&variant) {
                match Rubric::for_variant(&variant) {
                    Ok(r) => rubrics.insert(variant.clone(), r),
                    Err(e) => {
                        return wire::error("bad_request", format!("items[{i}].variant: {e}"))
                    }
                };
            }
            match GroundTruth::parse(&item.ground_truth) {
                Ok(truth) => json!(rubrics[&variant].score(&item.text, &truth, item.step)),
                Err(e) => wire::error("bad_request", format!("items[{i}].ground_truth: {e}")),
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct ObservationRequest {
    trajectory_ids: Vec<String>,
    actions: Vec<String>,
    #[serde(default)]
    finish: Option<Vec<bool>>,
    #[serde(default)]
    is_last_step: Option<Vec<bool>>,
}

/// VerlTool's `tool_server_url` endpoint: one action per trajectory, answered together. A
/// finished trajectory (`finish`, `is_last_step`, or the rollout's own rule) drops its session.
async fn get_observation(
    State(server): State<Shared>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let request: ObservationRequest = parse(&server, body).await?;
    let n = request.trajectory_ids.len();
    for (field, len) in [
        ("actions", Some(request.actions.len())),
        ("finish", request.finish.as_ref().map(Vec::len)),
        ("is_last_step", request.is_last_step.as_ref().map(Vec::len)),
    ] {
        if let Some(len) = len.filter(|&len| len != n) {
            return Err(ApiError::BadRequest(format!(
                "{field}: {len} entries for {n} trajectory_ids"
            )));
        }
    }
    let flag = |v: &Option<Vec<bool>>, i: usize| v.as_ref().is_some_and(|v| v[i]);
    let mut jobs = Vec::with_capacity(n);
    for (i, (id, action)) in request
        .trajectory_ids
        .iter()
        .zip(&request.actions)
        .enumerate()
    {
        let (finish, last) = (flag(&request.finish, i), flag(&request.is_last_step, i));
        let server = server.clone();
        jobs.push(async move {
            if finish {
                server.sessions.remove(id);
                return Ok::<_, ApiError>((String::new(), true, true));
            }
            let (session, _) = session(&server, id)?;
            let (step, _, done) = step_session(&server, &session, action).await?;
            let valid = !step.calls.is_empty() && step.calls.iter().all(|c| c.name.is_some());
            let done = done || last;
            if done {
                server.sessions.remove(id);
            }
            Ok((step.observation.unwrap_or_default(), done, valid))
        });
    }
    let mut observations = Vec::with_capacity(n);
    let mut dones = Vec::with_capacity(n);
    let mut valids = Vec::with_capacity(n);
    for result in futures::future::join_all(jobs).await {
        let (observation, done, valid) = result?;
        observations.push(observation);
        dones.push(done);
        valids.push(valid);
    }
    server.metrics.sessions.set(server.sessions.len() as i64);
    Ok(Json(json!({
        "observations": observations,
        "dones": dones,
        "valids": valids,
    })))
}
