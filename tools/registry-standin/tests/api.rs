//! End-to-end tests: each test starts a fresh registry in-process on an
//! ephemeral port and talks to it over real HTTP, checking status codes,
//! Confluent error codes/messages, content type and body shapes.

use registry_standin::{spawn, RunningRegistry, CONTENT_TYPE_V1};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------

const V1: &str = r#"{"type":"record","name":"Usage","namespace":"com.example","fields":[{"name":"tenant","type":"string"},{"name":"cpu","type":"double"}]}"#;

/// Same as `V1` modulo whitespace, attribute order and `doc` strings.
const V1_REFORMATTED: &str = r#"
{
  "namespace": "com.example",
  "type": "record",
  "name": "Usage",
  "doc": "Per-tenant usage",
  "fields": [
    { "name": "tenant", "type": "string", "doc": "tenant name" },
    { "type": "double", "name": "cpu" }
  ]
}"#;

/// Backward compatible with `V1`: adds a field with a default.
const V2_ADD_DEFAULTED: &str = r#"{"type":"record","name":"Usage","namespace":"com.example","fields":[{"name":"tenant","type":"string"},{"name":"cpu","type":"double"},{"name":"memory","type":"long","default":0}]}"#;

/// Not backward compatible with `V1`: adds a required field.
const ADD_REQUIRED: &str = r#"{"type":"record","name":"Usage","namespace":"com.example","fields":[{"name":"tenant","type":"string"},{"name":"cpu","type":"double"},{"name":"gpu","type":"int"}]}"#;

/// Not backward compatible with `V1`: `tenant` changes from string to int.
const CHANGE_TYPE: &str = r#"{"type":"record","name":"Usage","namespace":"com.example","fields":[{"name":"tenant","type":"int"},{"name":"cpu","type":"double"}]}"#;

/// Transitive scenario: T1 <- T2 (adds `b` with default) <- T3 (`b` without default).
/// T3 can read T2 data but not T1 data.
const T1: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"}]}"#;
const T2: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#;
const T3: &str = r#"{"type":"record","name":"T","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;

const INVALID_VERSION_SUFFIX: &str =
    "is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"";

const INVALID_LEVEL_MESSAGE: &str = "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

struct Ctx {
    registry: RunningRegistry,
    http: reqwest::Client,
}

/// A response with its status, content type (always asserted) and JSON body.
#[derive(Debug)]
struct Resp {
    status: u16,
    text: String,
    body: Value,
}

impl Resp {
    /// Asserts a Confluent error: status, `error_code`, exact `message`, and no other keys.
    #[track_caller]
    fn assert_error(&self, status: u16, error_code: u64, message: &str) {
        self.assert_error_prefix(status, error_code, message);
        assert_eq!(self.body["message"], message, "{}", self.text);
    }

    /// Like `assert_error`, but only checks that the message starts with `prefix`.
    #[track_caller]
    fn assert_error_prefix(&self, status: u16, error_code: u64, prefix: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        let obj = self.body.as_object().expect("error body is an object");
        assert_eq!(
            obj.len(),
            2,
            "error body has exactly two keys: {}",
            self.text
        );
        assert_eq!(obj["error_code"], json!(error_code), "{}", self.text);
        let message = obj["message"].as_str().expect("message is a string");
        assert!(
            message.starts_with(prefix),
            "{message:?} should start with {prefix:?}"
        );
    }

    #[track_caller]
    fn assert_ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.text);
        &self.body
    }

    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

async fn start() -> Ctx {
    let registry = spawn("127.0.0.1:0".parse().unwrap())
        .await
        .expect("start registry");
    Ctx {
        registry,
        http: reqwest::Client::new(),
    }
}

impl Ctx {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.registry.url(), path)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Resp {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.expect("body");
        assert_eq!(
            content_type.as_deref(),
            Some(CONTENT_TYPE_V1),
            "content type of {status} response {text}"
        );
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, text, body }
    }

    async fn get(&self, path: &str) -> Resp {
        self.send(self.http.get(self.url(path))).await
    }

    async fn delete(&self, path: &str) -> Resp {
        self.send(self.http.delete(self.url(path))).await
    }

    async fn post_raw(&self, path: &str, body: &str, content_type: Option<&str>) -> Resp {
        let mut request = self.http.post(self.url(path)).body(body.to_string());
        if let Some(ct) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, ct);
        }
        self.send(request).await
    }

    async fn post(&self, path: &str, body: Value) -> Resp {
        self.post_raw(path, &body.to_string(), Some(CONTENT_TYPE_V1))
            .await
    }

    async fn put(&self, path: &str, body: Value) -> Resp {
        let request = self
            .http
            .put(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE_V1)
            .body(body.to_string());
        self.send(request).await
    }

    /// Registers `schema` under `subject` and returns the raw response.
    async fn register(&self, subject: &str, schema: &str) -> Resp {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": schema }),
        )
        .await
    }

    /// Registers `schema` and returns its id, asserting success.
    async fn register_ok(&self, subject: &str, schema: &str) -> u64 {
        let resp = self.register(subject, schema).await;
        let body = resp.assert_ok();
        assert_eq!(body.as_object().unwrap().len(), 1, "{}", resp.text);
        body["id"].as_u64().expect("numeric id")
    }

    async fn versions(&self, subject: &str) -> Value {
        self.get(&format!("/subjects/{subject}/versions"))
            .await
            .assert_ok()
            .clone()
    }

    async fn set_subject_level(&self, subject: &str, level: &str) {
        let resp = self
            .put(
                &format!("/config/{subject}"),
                json!({ "compatibility": level }),
            )
            .await;
        assert_eq!(resp.assert_ok(), &json!({ "compatibility": level }));
    }
}

// ---------------------------------------------------------------------------
// Basics
// ---------------------------------------------------------------------------

#[tokio::test]
async fn library_handle_reports_bound_address_and_url() {
    let ctx = start().await;
    let addr = ctx.registry.addr();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    assert_eq!(
        ctx.registry.url(),
        format!("http://127.0.0.1:{}", addr.port())
    );
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let ctx = start().await;
    let url = ctx.registry.url();
    assert_eq!(ctx.get("/").await.status, 200);
    ctx.registry.shutdown().await;
    let fresh = reqwest::Client::new();
    assert!(fresh.get(format!("{url}/")).send().await.is_err());
}

#[tokio::test]
async fn root_returns_empty_object_and_schema_types_lists_avro() {
    let ctx = start().await;
    assert_eq!(ctx.get("/").await.assert_ok(), &json!({}));
    assert_eq!(
        ctx.get("/schemas/types").await.assert_ok(),
        &json!(["AVRO"])
    );
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_is_405() {
    let ctx = start().await;
    ctx.get("/nope")
        .await
        .assert_error(404, 404, "HTTP 404 Not Found");
    ctx.get("/subjects/a/versions/1/extra/deep")
        .await
        .assert_error(404, 404, "HTTP 404 Not Found");
    // Non-integer schema id: JAX-RS path parameter conversion fails with 404.
    ctx.get("/schemas/ids/abc")
        .await
        .assert_error(404, 404, "HTTP 404 Not Found");
    ctx.delete("/subjects")
        .await
        .assert_error(405, 405, "HTTP 405 Method Not Allowed");
    ctx.post("/schemas/ids/1", json!({})).await.assert_error(
        405,
        405,
        "HTTP 405 Method Not Allowed",
    );
    ctx.post("/config", json!({"compatibility": "FULL"}))
        .await
        .assert_error(405, 405, "HTTP 405 Method Not Allowed");
}

// ---------------------------------------------------------------------------
// Registration and ids
// ---------------------------------------------------------------------------

#[tokio::test]
async fn first_registration_gets_id_1_and_is_readable_everywhere() {
    let ctx = start().await;
    assert_eq!(ctx.get("/subjects").await.assert_ok(), &json!([]));

    assert_eq!(ctx.register_ok("usage-value", V1).await, 1);

    assert_eq!(
        ctx.get("/subjects").await.assert_ok(),
        &json!(["usage-value"])
    );
    assert_eq!(ctx.versions("usage-value").await, json!([1]));

    // The Rust client fetches with `?deleted=true`; Confluent omits schemaType for Avro.
    for path in ["/schemas/ids/1", "/schemas/ids/1?deleted=true"] {
        assert_eq!(ctx.get(path).await.assert_ok(), &json!({ "schema": V1 }));
    }
    assert_eq!(
        ctx.get("/schemas/ids/1/versions").await.assert_ok(),
        &json!([{ "subject": "usage-value", "version": 1 }])
    );
    assert_eq!(
        ctx.get("/subjects/usage-value/versions/1")
            .await
            .assert_ok(),
        &json!({ "subject": "usage-value", "version": 1, "id": 1, "schema": V1 })
    );
}

#[tokio::test]
async fn reregistering_same_or_reformatted_schema_is_idempotent() {
    let ctx = start().await;
    assert_eq!(ctx.register_ok("s", V1).await, 1);
    assert_eq!(ctx.register_ok("s", V1).await, 1);
    assert_eq!(ctx.register_ok("s", V1_REFORMATTED).await, 1);
    assert_eq!(ctx.versions("s").await, json!([1]));
    // The stored text is the first registration's.
    assert_eq!(
        ctx.get("/schemas/ids/1").await.assert_ok(),
        &json!({ "schema": V1 })
    );
    ctx.get("/schemas/ids/2")
        .await
        .assert_error(404, 40403, "Schema 2 not found");
}

#[tokio::test]
async fn same_schema_under_another_subject_reuses_the_id() {
    let ctx = start().await;
    assert_eq!(ctx.register_ok("a-value", V1).await, 1);
    assert_eq!(ctx.register_ok("b-value", V1_REFORMATTED).await, 1);
    assert_eq!(ctx.register_ok("c-value", T1).await, 2);
    assert_eq!(
        ctx.get("/subjects").await.assert_ok(),
        &json!(["a-value", "b-value", "c-value"])
    );
    assert_eq!(
        ctx.get("/schemas/ids/1/versions").await.assert_ok(),
        &json!([
            { "subject": "a-value", "version": 1 },
            { "subject": "b-value", "version": 1 }
        ])
    );
    assert_eq!(
        ctx.get("/subjects/b-value/versions/1").await.assert_ok()["id"],
        json!(1)
    );
    assert_eq!(
        ctx.get("/subjects?subjectPrefix=b-").await.assert_ok(),
        &json!(["b-value"])
    );
}

#[tokio::test]
async fn schemas_differing_in_defaults_or_logical_types_are_distinct() {
    let ctx = start().await;
    ctx.set_subject_level("s", "NONE").await;
    let plain = r#"{"type":"record","name":"R","fields":[{"name":"ts","type":"long"}]}"#;
    let defaulted =
        r#"{"type":"record","name":"R","fields":[{"name":"ts","type":"long","default":0}]}"#;
    let logical = r#"{"type":"record","name":"R","fields":[{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
    assert_eq!(ctx.register_ok("s", plain).await, 1);
    assert_eq!(ctx.register_ok("s", defaulted).await, 2);
    assert_eq!(ctx.register_ok("s", logical).await, 3);
    assert_eq!(ctx.versions("s").await, json!([1, 2, 3]));
    assert_eq!(
        ctx.get("/schemas/ids/3").await.assert_ok(),
        &json!({ "schema": logical })
    );
}

#[tokio::test]
async fn backward_compatible_v2_becomes_version_2() {
    let ctx = start().await;
    assert_eq!(ctx.register_ok("s", V1).await, 1);
    assert_eq!(ctx.register_ok("s", V2_ADD_DEFAULTED).await, 2);
    assert_eq!(ctx.versions("s").await, json!([1, 2]));

    let v2 = json!({ "subject": "s", "version": 2, "id": 2, "schema": V2_ADD_DEFAULTED });
    for version in ["2", "latest", "-1"] {
        assert_eq!(
            ctx.get(&format!("/subjects/s/versions/{version}"))
                .await
                .assert_ok(),
            &v2,
            "version {version}"
        );
    }
    assert_eq!(
        ctx.get("/subjects/s/versions/1").await.assert_ok(),
        &json!({ "subject": "s", "version": 1, "id": 1, "schema": V1 })
    );
    // `/schema` returns the schema itself as the JSON body.
    let raw = ctx.get("/subjects/s/versions/latest/schema").await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.text, V2_ADD_DEFAULTED);
    assert_eq!(raw.body["fields"][2]["name"], "memory");
}

#[tokio::test]
async fn incompatible_schemas_are_rejected_with_409() {
    let ctx = start().await;
    ctx.register_ok("s", V1).await;

    let prefix = "Schema being registered is incompatible with an earlier schema for subject \"s\", details: [version 1: ";
    let required = ctx.register("s", ADD_REQUIRED).await;
    required.assert_error_prefix(409, 409, prefix);
    assert!(required.message().contains("backward"), "{}", required.text);
    assert!(required.message().contains("'gpu'"), "{}", required.text);
    assert!(required.message().ends_with(']'), "{}", required.text);

    let changed = ctx.register("s", CHANGE_TYPE).await;
    changed.assert_error_prefix(409, 409, prefix);
    assert!(changed.message().contains("'tenant'"), "{}", changed.text);

    // Nothing was registered.
    assert_eq!(ctx.versions("s").await, json!([1]));
    ctx.get("/schemas/ids/2")
        .await
        .assert_error(404, 40403, "Schema 2 not found");
}

#[tokio::test]
async fn invalid_schemas_are_rejected_with_42201() {
    let ctx = start().await;
    for schema in [
        "not json at all",
        r#"{"type":"record","name":"R"}"#,
        r#"{"type":"nonsense"}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"Missing"}]}"#,
    ] {
        ctx.register("s", schema)
            .await
            .assert_error_prefix(422, 42201, "Invalid schema ");
    }
    ctx.get("/subjects/s/versions")
        .await
        .assert_error(404, 40401, "Subject 's' not found.");
}

#[tokio::test]
async fn unsupported_schema_types_and_references_are_rejected() {
    let ctx = start().await;
    let proto = ctx
        .post(
            "/subjects/s/versions",
            json!({ "schema": "syntax = \"proto3\";", "schemaType": "PROTOBUF" }),
        )
        .await;
    proto.assert_error_prefix(422, 42201, "Unsupported schema type 'PROTOBUF'");

    let refs = ctx
        .post(
            "/subjects/s/versions",
            json!({
                "schema": V1,
                "schemaType": "AVRO",
                "references": [{ "name": "x", "subject": "y", "version": 1 }]
            }),
        )
        .await;
    refs.assert_error(422, 42201, "references are not supported by this stand-in");

    // Explicit AVRO and empty references are fine.
    let ok = ctx
        .post(
            "/subjects/s/versions",
            json!({ "schema": V1, "schemaType": "AVRO", "references": [] }),
        )
        .await;
    assert_eq!(ok.assert_ok(), &json!({ "id": 1 }));
}

#[tokio::test]
async fn malformed_bodies_are_422() {
    let ctx = start().await;
    ctx.post_raw("/subjects/s/versions", "{not json", Some(CONTENT_TYPE_V1))
        .await
        .assert_error_prefix(422, 422, "Unprocessable request body");
    ctx.post("/subjects/s/versions", json!({ "schemaType": "AVRO" }))
        .await
        .assert_error(
            422,
            422,
            "Unprocessable request body: the \"schema\" field is required",
        );
    ctx.post("/subjects/s/versions", json!({ "schema": 5 }))
        .await
        .assert_error_prefix(422, 422, "Unprocessable request body");
    ctx.post_raw("/subjects/s/versions", "", None)
        .await
        .assert_error_prefix(422, 422, "Unprocessable request body");
}

#[tokio::test]
async fn accepted_request_content_types() {
    let ctx = start().await;
    let body = json!({ "schema": V1 }).to_string();
    for content_type in [
        Some("application/vnd.schemaregistry.v1+json"),
        Some("application/vnd.schemaregistry+json"),
        Some("application/json"),
        None,
    ] {
        let resp = ctx
            .post_raw("/subjects/s/versions", &body, content_type)
            .await;
        assert_eq!(resp.assert_ok(), &json!({ "id": 1 }), "{content_type:?}");
    }
    assert_eq!(ctx.versions("s").await, json!([1]));
}

#[tokio::test]
async fn subject_names_with_escaped_slashes() {
    let ctx = start().await;
    assert_eq!(ctx.register_ok("team%2Fusage", V1).await, 1);
    assert_eq!(
        ctx.get("/subjects").await.assert_ok(),
        &json!(["team/usage"])
    );
    assert_eq!(
        ctx.get("/subjects/team%2Fusage/versions/latest")
            .await
            .assert_ok()["subject"],
        "team/usage"
    );
}

// ---------------------------------------------------------------------------
// Subjects / versions errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unknown_subject_version_and_invalid_versions() {
    let ctx = start().await;
    ctx.get("/subjects/missing/versions").await.assert_error(
        404,
        40401,
        "Subject 'missing' not found.",
    );
    ctx.get("/subjects/missing/versions/1").await.assert_error(
        404,
        40401,
        "Subject 'missing' not found.",
    );
    ctx.get("/subjects/missing/versions/latest")
        .await
        .assert_error(404, 40401, "Subject 'missing' not found.");

    ctx.register_ok("s", V1).await;
    ctx.get("/subjects/s/versions/5")
        .await
        .assert_error(404, 40402, "Version 5 not found.");
    ctx.get("/subjects/s/versions/5/schema")
        .await
        .assert_error(404, 40402, "Version 5 not found.");

    for bad in ["abc", "0", "-2", "2147483648", "1.5"] {
        ctx.get(&format!("/subjects/s/versions/{bad}"))
            .await
            .assert_error(
                422,
                42202,
                &format!("The specified version '{bad}' {INVALID_VERSION_SUFFIX}"),
            );
    }
    // Version validation comes before the subject lookup, like Confluent.
    ctx.get("/subjects/missing/versions/abc")
        .await
        .assert_error_prefix(422, 42202, "The specified version 'abc'");
}

#[tokio::test]
async fn unknown_schema_id_is_40403() {
    let ctx = start().await;
    ctx.get("/schemas/ids/42?deleted=true")
        .await
        .assert_error(404, 40403, "Schema 42 not found");
    ctx.get("/schemas/ids/0")
        .await
        .assert_error(404, 40403, "Schema 0 not found");
    ctx.get("/schemas/ids/-3")
        .await
        .assert_error(404, 40403, "Schema -3 not found");
    ctx.get("/schemas/ids/42/versions")
        .await
        .assert_error(404, 40403, "Schema 42 not found");
}

// ---------------------------------------------------------------------------
// Lookup
// ---------------------------------------------------------------------------

#[tokio::test]
async fn lookup_schema_under_subject() {
    let ctx = start().await;
    ctx.post("/subjects/s", json!({ "schema": V1 }))
        .await
        .assert_error(404, 40401, "Subject 's' not found.");

    ctx.register_ok("s", V1).await;
    ctx.register_ok("s", V2_ADD_DEFAULTED).await;
    ctx.register_ok("other", T1).await;

    let expected_v1 = json!({ "subject": "s", "version": 1, "id": 1, "schema": V1 });
    assert_eq!(
        ctx.post("/subjects/s", json!({ "schema": V1 }))
            .await
            .assert_ok(),
        &expected_v1
    );
    assert_eq!(
        ctx.post("/subjects/s", json!({ "schema": V1_REFORMATTED }))
            .await
            .assert_ok(),
        &expected_v1
    );
    assert_eq!(
        ctx.post(
            "/subjects/s?deleted=false",
            json!({ "schema": V2_ADD_DEFAULTED })
        )
        .await
        .assert_ok(),
        &json!({ "subject": "s", "version": 2, "id": 2, "schema": V2_ADD_DEFAULTED })
    );

    // Registered elsewhere (id 3) but not under "s", and never registered at all.
    ctx.post("/subjects/s", json!({ "schema": T1 }))
        .await
        .assert_error(404, 40403, "Schema not found");
    ctx.post("/subjects/s", json!({ "schema": ADD_REQUIRED }))
        .await
        .assert_error(404, 40403, "Schema not found");
    ctx.post("/subjects/s", json!({ "schema": "{\"type\":\"bogus\"}" }))
        .await
        .assert_error_prefix(422, 42201, "Invalid schema ");
}

// ---------------------------------------------------------------------------
// Compatibility endpoint
// ---------------------------------------------------------------------------

#[tokio::test]
async fn compatibility_against_a_version() {
    let ctx = start().await;
    ctx.register_ok("s", V1).await;

    for version in ["1", "latest", "-1"] {
        let path = format!("/compatibility/subjects/s/versions/{version}");
        assert_eq!(
            ctx.post(&path, json!({ "schema": V2_ADD_DEFAULTED }))
                .await
                .assert_ok(),
            &json!({ "is_compatible": true })
        );
        assert_eq!(
            ctx.post(&path, json!({ "schema": ADD_REQUIRED }))
                .await
                .assert_ok(),
            &json!({ "is_compatible": false })
        );
    }

    let verbose = ctx
        .post(
            "/compatibility/subjects/s/versions/latest?verbose=true",
            json!({ "schema": CHANGE_TYPE }),
        )
        .await;
    let body = verbose.assert_ok();
    assert_eq!(body["is_compatible"], false);
    let messages = body["messages"].as_array().expect("messages array");
    assert_eq!(messages.len(), 1, "{}", verbose.text);
    let message = messages[0].as_str().unwrap();
    assert!(message.starts_with("version 1: "), "{message}");
    assert!(message.contains("backward"), "{message}");
    assert!(message.contains("'tenant'"), "{message}");

    assert_eq!(
        ctx.post(
            "/compatibility/subjects/s/versions/1?verbose=true",
            json!({ "schema": V2_ADD_DEFAULTED })
        )
        .await
        .assert_ok(),
        &json!({ "is_compatible": true, "messages": [] })
    );
    // The check does not register anything.
    assert_eq!(ctx.versions("s").await, json!([1]));
}

#[tokio::test]
async fn compatibility_endpoint_errors() {
    let ctx = start().await;
    let body = json!({ "schema": V1 });
    ctx.post(
        "/compatibility/subjects/missing/versions/latest",
        body.clone(),
    )
    .await
    .assert_error(404, 40401, "Subject 'missing' not found.");
    ctx.post("/compatibility/subjects/missing/versions/1", body.clone())
        .await
        .assert_error(404, 40401, "Subject 'missing' not found.");

    ctx.register_ok("s", V1).await;
    ctx.post("/compatibility/subjects/s/versions/9", body.clone())
        .await
        .assert_error(404, 40402, "Version 9 not found.");
    ctx.post("/compatibility/subjects/s/versions/abc", body.clone())
        .await
        .assert_error(
            422,
            42202,
            &format!("The specified version 'abc' {INVALID_VERSION_SUFFIX}"),
        );
    ctx.post(
        "/compatibility/subjects/s/versions/latest",
        json!({ "schema": "{\"type\":\"record\"}" }),
    )
    .await
    .assert_error_prefix(422, 42201, "Invalid schema ");
    ctx.post_raw("/compatibility/subjects/s/versions/latest", "[", None)
        .await
        .assert_error_prefix(422, 422, "Unprocessable request body");
}

#[tokio::test]
async fn compatibility_against_all_versions_of_a_subject() {
    let ctx = start().await;
    // Unknown subject: anything is compatible.
    assert_eq!(
        ctx.post(
            "/compatibility/subjects/missing/versions",
            json!({ "schema": V1 })
        )
        .await
        .assert_ok(),
        &json!({ "is_compatible": true })
    );
    ctx.register_ok("s", V1).await;
    assert_eq!(
        ctx.post(
            "/compatibility/subjects/s/versions?verbose=true",
            json!({ "schema": V2_ADD_DEFAULTED })
        )
        .await
        .assert_ok(),
        &json!({ "is_compatible": true, "messages": [] })
    );
    let resp = ctx
        .post(
            "/compatibility/subjects/s/versions?verbose=true",
            json!({ "schema": ADD_REQUIRED }),
        )
        .await;
    assert_eq!(resp.assert_ok()["is_compatible"], false);
    assert_eq!(resp.body["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn transitive_levels_check_every_version() {
    let ctx = start().await;
    // BACKWARD (default): T3 only has to read T2 data.
    assert_eq!(ctx.register_ok("plain", T1).await, 1);
    assert_eq!(ctx.register_ok("plain", T2).await, 2);
    assert_eq!(
        ctx.post(
            "/compatibility/subjects/plain/versions",
            json!({ "schema": T3 })
        )
        .await
        .assert_ok(),
        &json!({ "is_compatible": true })
    );
    // ...although it cannot read T1 data:
    assert_eq!(
        ctx.post(
            "/compatibility/subjects/plain/versions/1",
            json!({ "schema": T3 })
        )
        .await
        .assert_ok(),
        &json!({ "is_compatible": false })
    );
    assert_eq!(ctx.register_ok("plain", T3).await, 3);
    assert_eq!(ctx.versions("plain").await, json!([1, 2, 3]));

    // BACKWARD_TRANSITIVE: T3 must read T1 data too.
    ctx.set_subject_level("transitive", "BACKWARD_TRANSITIVE")
        .await;
    assert_eq!(ctx.register_ok("transitive", T1).await, 1);
    assert_eq!(ctx.register_ok("transitive", T2).await, 2);
    let verbose = ctx
        .post(
            "/compatibility/subjects/transitive/versions?verbose=true",
            json!({ "schema": T3 }),
        )
        .await;
    assert_eq!(verbose.assert_ok()["is_compatible"], false);
    let messages = verbose.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{}", verbose.text);
    assert!(messages[0].as_str().unwrap().starts_with("version 1: "));

    let rejected = ctx.register("transitive", T3).await;
    rejected.assert_error_prefix(
        409,
        409,
        "Schema being registered is incompatible with an earlier schema for subject \"transitive\", details: [version 1: ",
    );
    assert!(rejected.message().contains("'b'"), "{}", rejected.text);
    assert_eq!(ctx.versions("transitive").await, json!([1, 2]));
}

#[tokio::test]
async fn forward_full_and_none_levels() {
    let ctx = start().await;
    // FORWARD: old readers must read new data; adding a required field is fine,
    // removing a field without default is not.
    ctx.set_subject_level("fwd", "FORWARD").await;
    ctx.register_ok("fwd", V1).await;
    assert_eq!(ctx.register_ok("fwd", ADD_REQUIRED).await, 2);
    let dropped = r#"{"type":"record","name":"Usage","namespace":"com.example","fields":[{"name":"tenant","type":"string"},{"name":"gpu","type":"int"}]}"#;
    let resp = ctx.register("fwd", dropped).await;
    resp.assert_error_prefix(409, 409, "Schema being registered is incompatible");
    assert!(resp.message().contains("forward"), "{}", resp.text);

    // FULL: both directions; a defaulted field passes, a required one does not.
    ctx.set_subject_level("full", "FULL").await;
    ctx.register_ok("full", V1).await;
    ctx.register("full", ADD_REQUIRED)
        .await
        .assert_error_prefix(409, 409, "Schema being registered is incompatible");
    ctx.register_ok("full", V2_ADD_DEFAULTED).await;
    assert_eq!(ctx.versions("full").await, json!([1, 2]));

    // NONE: anything goes.
    ctx.set_subject_level("none", "NONE").await;
    ctx.register_ok("none", V1).await;
    ctx.register_ok("none", CHANGE_TYPE).await;
    assert_eq!(ctx.versions("none").await, json!([1, 2]));
}

// ---------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------

#[tokio::test]
async fn global_config_get_and_put() {
    let ctx = start().await;
    assert_eq!(
        ctx.get("/config").await.assert_ok(),
        &json!({ "compatibilityLevel": "BACKWARD" })
    );
    assert_eq!(
        ctx.put("/config", json!({ "compatibility": "FULL" }))
            .await
            .assert_ok(),
        &json!({ "compatibility": "FULL" })
    );
    assert_eq!(
        ctx.get("/config").await.assert_ok(),
        &json!({ "compatibilityLevel": "FULL" })
    );
    // Level names are case-insensitive and echoed in canonical form.
    assert_eq!(
        ctx.put("/config", json!({ "compatibility": "forward_transitive" }))
            .await
            .assert_ok(),
        &json!({ "compatibility": "FORWARD_TRANSITIVE" })
    );
    for bad in [
        json!({ "compatibility": "SIDEWAYS" }),
        json!({}),
        json!({ "compatibility": null }),
    ] {
        ctx.put("/config", bad)
            .await
            .assert_error(422, 42203, INVALID_LEVEL_MESSAGE);
    }
    assert_eq!(
        ctx.get("/config").await.assert_ok(),
        &json!({ "compatibilityLevel": "FORWARD_TRANSITIVE" })
    );
}

#[tokio::test]
async fn global_config_governs_registration() {
    let ctx = start().await;
    ctx.register_ok("s", V1).await;
    ctx.register("s", CHANGE_TYPE).await.assert_error_prefix(
        409,
        409,
        "Schema being registered is incompatible",
    );
    ctx.put("/config", json!({ "compatibility": "NONE" }))
        .await
        .assert_ok();
    assert_eq!(ctx.register_ok("s", CHANGE_TYPE).await, 2);
}

#[tokio::test]
async fn subject_config_get_put_delete() {
    let ctx = start().await;
    ctx.get("/config/s").await.assert_error(
        404,
        40408,
        "Subject 's' does not have subject-level compatibility configured",
    );
    assert_eq!(
        ctx.get("/config/s?defaultToGlobal=true").await.assert_ok(),
        &json!({ "compatibilityLevel": "BACKWARD" })
    );

    // Allowed before the subject has any versions; not listed as a subject.
    ctx.set_subject_level("s", "NONE").await;
    assert_eq!(
        ctx.get("/config/s").await.assert_ok(),
        &json!({ "compatibilityLevel": "NONE" })
    );
    assert_eq!(
        ctx.get("/config/s?defaultToGlobal=true").await.assert_ok(),
        &json!({ "compatibilityLevel": "NONE" })
    );
    assert_eq!(ctx.get("/subjects").await.assert_ok(), &json!([]));
    ctx.put("/config/s", json!({ "compatibility": "bogus" }))
        .await
        .assert_error(422, 42203, INVALID_LEVEL_MESSAGE);

    // The subject level overrides the global level.
    ctx.register_ok("s", V1).await;
    assert_eq!(ctx.register_ok("s", CHANGE_TYPE).await, 2);
    assert_eq!(
        ctx.get("/config").await.assert_ok(),
        &json!({ "compatibilityLevel": "BACKWARD" })
    );

    // DELETE returns the previous level and falls back to global.
    assert_eq!(
        ctx.delete("/config/s").await.assert_ok(),
        &json!({ "compatibilityLevel": "NONE" })
    );
    ctx.get("/config/s").await.assert_error(
        404,
        40408,
        "Subject 's' does not have subject-level compatibility configured",
    );
    ctx.register("s", ADD_REQUIRED).await.assert_error_prefix(
        409,
        409,
        "Schema being registered is incompatible",
    );
    ctx.delete("/config/s").await.assert_error(
        404,
        40408,
        "Subject 's' does not have subject-level compatibility configured",
    );
    ctx.delete("/config/unknown")
        .await
        .assert_error(404, 40401, "Subject 'unknown' not found.");
}
