//! HTTP routes and handlers mirroring the Confluent Schema Registry REST API.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::compat::CompatibilityLevel;
use crate::error::ApiError;
use crate::store::{ParsedSchema, Registry, SubjectVersion, VersionSpec};

/// The content type of every response, like Confluent Schema Registry.
pub const CONTENT_TYPE_V1: &str = "application/vnd.schemaregistry.v1+json";

type ApiResult = Result<Response, ApiError>;

/// Serialises `body` as JSON with the schema-registry content type.
pub(crate) fn sr_json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => raw_response(status, bytes),
        Err(err) => raw_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error_code": 50001, "message": format!("serialization failed: {err}")})
                .to_string()
                .into_bytes(),
        ),
    }
}

fn raw_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = (status, Body::from(bytes)).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1));
    response
}

fn ok<T: Serialize + ?Sized>(body: &T) -> ApiResult {
    Ok(sr_json(StatusCode::OK, body))
}

/// Builds the axum router serving the registry API on top of `state`.
///
/// Routes (all responses are `application/vnd.schemaregistry.v1+json`):
///
/// | Method | Path |
/// |---|---|
/// | GET | `/` |
/// | GET | `/schemas/types` |
/// | GET | `/schemas/ids/{id}` |
/// | GET | `/schemas/ids/{id}/versions` |
/// | GET | `/subjects` |
/// | POST | `/subjects/{subject}` (lookup) |
/// | GET, POST | `/subjects/{subject}/versions` |
/// | GET | `/subjects/{subject}/versions/{version}` |
/// | GET | `/subjects/{subject}/versions/{version}/schema` |
/// | POST | `/compatibility/subjects/{subject}/versions` |
/// | POST | `/compatibility/subjects/{subject}/versions/{version}` |
/// | GET, PUT | `/config` |
/// | GET, PUT, DELETE | `/config/{subject}` |
///
/// Unknown routes answer 404 `{"error_code":404,"message":"HTTP 404 Not Found"}`,
/// known routes with another method 405.
pub fn router(state: Registry) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup_schema))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register_schema),
        )
        .route("/subjects/{subject}/versions/{version}", get(get_version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_subject_compatibility),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_version_compatibility),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(middleware::from_fn(finish_response))
        .with_state(state)
}

/// Logs each request and makes sure every response carries a Confluent-style
/// JSON body and content type (framework rejections are plain text otherwise).
async fn finish_response(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let mut response = next.run(request).await;
    let status = response.status();
    let is_ours = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v == CONTENT_TYPE_V1);
    if !is_ours {
        if status.is_client_error() || status.is_server_error() {
            let message = format!(
                "HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("Error")
            );
            response = ApiError::new(status, u32::from(status.as_u16()), message).into_response();
        } else {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V1));
        }
    }
    tracing::debug!(%method, %uri, status = status.as_u16(), "handled request");
    response
}

async fn not_found() -> ApiError {
    ApiError::route_not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Returns true if the raw query string contains `name=true` (case-insensitive value).
fn query_flag(query: &Option<String>, name: &str) -> bool {
    query.as_deref().unwrap_or("").split('&').any(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        key == name && value.eq_ignore_ascii_case("true")
    })
}

/// Returns the value of query parameter `name`, if present (not percent-decoded).
fn query_value<'a>(query: &'a Option<String>, name: &str) -> Option<&'a str> {
    query
        .as_deref()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Body of registration, lookup and compatibility requests.
#[derive(Debug, Deserialize)]
struct SchemaRequest {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    references: Option<Vec<Value>>,
}

/// A request body that is well-formed JSON with a `schema` string.
struct SchemaBody {
    schema: String,
    schema_type: Option<String>,
    references: Vec<Value>,
}

/// Parses the JSON structure of a schema request (422 / 422 on failure).
fn parse_schema_body(body: &Bytes) -> Result<SchemaBody, ApiError> {
    let request: SchemaRequest = serde_json::from_slice(body).map_err(|err| {
        ApiError::unprocessable_body(format!("Unprocessable request body: {err}"))
    })?;
    let schema = request.schema.ok_or_else(|| {
        ApiError::unprocessable_body("Unprocessable request body: the \"schema\" field is required")
    })?;
    Ok(SchemaBody {
        schema,
        schema_type: request.schema_type,
        references: request.references.unwrap_or_default(),
    })
}

impl SchemaBody {
    /// Validates schema type and references and parses the Avro schema (422 / 42201).
    fn parse(&self) -> Result<ParsedSchema, ApiError> {
        if let Some(schema_type) = &self.schema_type {
            if !schema_type.eq_ignore_ascii_case("AVRO") {
                return Err(ApiError::invalid_schema(format!(
                    "Unsupported schema type '{schema_type}': this stand-in only supports AVRO"
                )));
            }
        }
        if !self.references.is_empty() {
            return Err(ApiError::invalid_schema(
                "references are not supported by this stand-in",
            ));
        }
        ParsedSchema::parse(&self.schema)
    }
}

fn version_body(version: &SubjectVersion) -> Value {
    json!({
        "subject": version.subject,
        "version": version.version,
        "id": version.id,
        "schema": version.schema,
    })
}

/// `GET /`: Confluent answers with an empty object.
async fn root() -> ApiResult {
    ok(&json!({}))
}

/// `GET /schemas/types`.
async fn schema_types() -> ApiResult {
    ok(&["AVRO"])
}

/// Parses an integer schema id path segment; JAX-RS answers 404 for non-integers.
fn parse_id(raw: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>().map_err(|_| ApiError::route_not_found())
}

/// `GET /schemas/ids/{id}` (query parameters such as `deleted=true` are accepted and ignored).
async fn schema_by_id(State(registry): State<Registry>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let schema = u32::try_from(id)
        .ok()
        .and_then(|id| registry.schema_by_id(id))
        .ok_or_else(|| ApiError::schema_id_not_found(id))?;
    ok(&json!({ "schema": schema }))
}

/// `GET /schemas/ids/{id}/versions`.
async fn versions_by_id(State(registry): State<Registry>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let pairs = u32::try_from(id)
        .ok()
        .and_then(|id| registry.subject_versions_for_id(id))
        .ok_or_else(|| ApiError::schema_id_not_found(id))?;
    let body: Vec<Value> = pairs
        .into_iter()
        .map(|(subject, version)| json!({ "subject": subject, "version": version }))
        .collect();
    ok(&body)
}

/// `GET /subjects` (supports `?subjectPrefix=`).
async fn list_subjects(State(registry): State<Registry>, RawQuery(query): RawQuery) -> ApiResult {
    let prefix = query_value(&query, "subjectPrefix").unwrap_or("");
    let subjects: Vec<String> = registry
        .subjects()
        .into_iter()
        .filter(|s| s.starts_with(prefix))
        .collect();
    ok(&subjects)
}

/// `GET /subjects/{subject}/versions`.
async fn list_versions(State(registry): State<Registry>, Path(subject): Path<String>) -> ApiResult {
    ok(&registry.versions(&subject)?)
}

/// `POST /subjects/{subject}/versions`: register a schema.
async fn register_schema(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let candidate = parse_schema_body(&body)?.parse()?;
    let id = registry.register(&subject, &candidate)?;
    tracing::info!(subject = %subject, id, "registered schema");
    ok(&json!({ "id": id }))
}

/// `GET /subjects/{subject}/versions/{version}`.
async fn get_version(
    State(registry): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    ok(&version_body(&registry.version(&subject, spec)?))
}

/// `GET /subjects/{subject}/versions/{version}/schema`: the schema itself as the body.
async fn get_version_schema(
    State(registry): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    let spec = VersionSpec::parse(&version)?;
    let found = registry.version(&subject, spec)?;
    Ok(raw_response(StatusCode::OK, found.schema.into_bytes()))
}

/// `POST /subjects/{subject}`: is this schema registered under the subject?
async fn lookup_schema(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let candidate = parse_schema_body(&body)?.parse()?;
    ok(&version_body(&registry.lookup(&subject, &candidate)?))
}

fn compatibility_body(reasons: Vec<String>, verbose: bool) -> Value {
    if verbose {
        json!({ "is_compatible": reasons.is_empty(), "messages": reasons })
    } else {
        json!({ "is_compatible": reasons.is_empty() })
    }
}

/// `POST /compatibility/subjects/{subject}/versions/{version}`.
async fn check_version_compatibility(
    State(registry): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult {
    let request = parse_schema_body(&body)?;
    let spec = VersionSpec::parse(&version)?;
    // Resolve the version first so unknown subjects/versions win over schema errors.
    registry.version(&subject, spec)?;
    let candidate = request.parse()?;
    let reasons = registry.check_version(&subject, spec, &candidate)?;
    ok(&compatibility_body(reasons, query_flag(&query, "verbose")))
}

/// `POST /compatibility/subjects/{subject}/versions`: check as registration would.
async fn check_subject_compatibility(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult {
    let candidate = parse_schema_body(&body)?.parse()?;
    let reasons = registry.check_subject(&subject, &candidate);
    ok(&compatibility_body(reasons, query_flag(&query, "verbose")))
}

/// Body of `PUT /config` and `PUT /config/{subject}`.
#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
}

/// Parses a config update body into a level (422 / 422 bad JSON, 422 / 42203 bad level).
fn parse_config_body(body: &Bytes) -> Result<CompatibilityLevel, ApiError> {
    let request: ConfigRequest = serde_json::from_slice(body).map_err(|err| {
        ApiError::unprocessable_body(format!("Unprocessable request body: {err}"))
    })?;
    request
        .compatibility
        .as_deref()
        .and_then(|level| level.parse().ok())
        .ok_or_else(ApiError::invalid_compatibility_level)
}

/// `GET /config`.
async fn get_global_config(State(registry): State<Registry>) -> ApiResult {
    ok(&json!({ "compatibilityLevel": registry.global_compatibility() }))
}

/// `PUT /config`.
async fn put_global_config(State(registry): State<Registry>, body: Bytes) -> ApiResult {
    let level = parse_config_body(&body)?;
    registry.set_global_compatibility(level);
    tracing::info!(%level, "global compatibility updated");
    ok(&json!({ "compatibility": level }))
}

/// `GET /config/{subject}` (supports `?defaultToGlobal=true`).
async fn get_subject_config(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let level = match registry.subject_compatibility(&subject) {
        Some(level) => level,
        None if query_flag(&query, "defaultToGlobal") => registry.global_compatibility(),
        None => return Err(ApiError::subject_compatibility_not_configured(&subject)),
    };
    ok(&json!({ "compatibilityLevel": level }))
}

/// `PUT /config/{subject}`.
async fn put_subject_config(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    body: Bytes,
) -> ApiResult {
    let level = parse_config_body(&body)?;
    registry.set_subject_compatibility(&subject, level);
    tracing::info!(subject = %subject, %level, "subject compatibility updated");
    ok(&json!({ "compatibility": level }))
}

/// `DELETE /config/{subject}`: removes the override and returns the previous level.
async fn delete_subject_config(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
) -> ApiResult {
    let previous = registry.delete_subject_compatibility(&subject)?;
    ok(&json!({ "compatibilityLevel": previous }))
}
