//! Schema registry administration over the Confluent REST API: register, look up, check.
//!
//! Only endpoints that Confluent Schema Registry, Karapace, Apicurio (ccompat) and Redpanda all
//! serve are used. Message encoding and decoding live in [`super::wire`].

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Where the registry is and how to authenticate.
#[derive(Debug, Clone, Default)]
pub struct RegistryEndpoint {
    /// Base URL, e.g. `http://schema-registry:8081`.
    pub url: String,
    /// Basic auth user (Confluent Cloud API key, Karapace user ...).
    pub username: Option<String>,
    /// Basic auth password.
    pub password: Option<String>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl RegistryEndpoint {
    /// An endpoint without authentication and a 10 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: Duration::from_secs(10),
            ..Self::default()
        }
    }

    /// Settings for `schema_registry_converter`'s encoder and decoder.
    pub fn sr_settings(&self) -> Result<SrSettings, RegistryError> {
        let mut builder = SrSettings::new_builder(self.url.trim_end_matches('/').to_owned());
        builder.set_timeout(self.timeout);
        if let Some(user) = &self.username {
            builder.set_basic_authorization(user, self.password.as_deref());
        }
        builder
            .build()
            .map_err(|e| RegistryError::Config(format!("registry client: {e}")))
    }
}

/// A failed registry call.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with a Confluent error body.
    #[error("registry said {status} (error_code {error_code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Confluent `error_code`, e.g. 40401 subject not found, 409 incompatible.
        error_code: i64,
        /// Confluent `message`.
        message: String,
    },
    /// The registry could not be reached or answered something unreadable.
    #[error("registry at {url}: {source}")]
    Http {
        /// Request URL.
        url: String,
        /// Transport error.
        #[source]
        source: reqwest::Error,
    },
    /// Bad client configuration.
    #[error("{0}")]
    Config(String),
}

impl RegistryError {
    /// The Confluent error code, when the registry answered with one.
    pub fn error_code(&self) -> Option<i64> {
        match self {
            RegistryError::Api { error_code, .. } => Some(*error_code),
            _ => None,
        }
    }
}

/// A schema registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SubjectVersion {
    /// Subject name.
    pub subject: String,
    /// Version within the subject, from 1.
    pub version: u32,
    /// Global schema id (what the wire format carries).
    pub id: u32,
    /// The schema text as stored.
    pub schema: String,
}

/// A registry's answer to "could this schema be registered?".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CompatibilityAnswer {
    /// Whether the schema is compatible.
    pub is_compatible: bool,
    /// Reasons (verbose mode; empty where a registry does not give them).
    #[serde(default)]
    pub messages: Vec<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: i64,
    message: String,
}

#[derive(Deserialize)]
struct IdBody {
    id: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigBody {
    compatibility_level: String,
}

/// A Confluent-API schema registry client for administration.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    endpoint: RegistryEndpoint,
    base: Url,
}

impl RegistryClient {
    /// A client for `endpoint`.
    pub fn new(endpoint: RegistryEndpoint) -> Result<Self, RegistryError> {
        let base = Url::parse(endpoint.url.trim_end_matches('/')).map_err(|e| {
            RegistryError::Config(format!("schema registry url {:?}: {e}", endpoint.url))
        })?;
        let http = reqwest::Client::builder()
            .timeout(endpoint.timeout)
            .build()
            .map_err(|e| RegistryError::Config(format!("http client: {e}")))?;
        Ok(Self {
            http,
            endpoint,
            base,
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &RegistryEndpoint {
        &self.endpoint
    }

    /// Registers `schema` under `subject` (idempotent: an existing schema keeps its id and
    /// version) and returns where it landed.
    pub async fn register(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<SubjectVersion, RegistryError> {
        let body = schema_body(schema);
        let IdBody { id } = self
            .call(
                Method::POST,
                &["subjects", subject, "versions"],
                &[],
                Some(&body),
            )
            .await?;
        let found = self.lookup(subject, schema).await?;
        debug_assert_eq!(found.as_ref().map(|f| f.id), Some(id));
        found.ok_or_else(|| RegistryError::Api {
            status: 404,
            error_code: 40403,
            message: format!("schema {id} registered under {subject} but not found by lookup"),
        })
    }

    /// The version of `schema` under `subject`, if it is registered there.
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Option<SubjectVersion>, RegistryError> {
        let found = self
            .call(
                Method::POST,
                &["subjects", subject],
                &[],
                Some(&schema_body(schema)),
            )
            .await;
        not_found_is_none(found)
    }

    /// The latest version under `subject`, if the subject exists.
    pub async fn latest(&self, subject: &str) -> Result<Option<SubjectVersion>, RegistryError> {
        let found = self
            .call(
                Method::GET,
                &["subjects", subject, "versions", "latest"],
                &[],
                None,
            )
            .await;
        not_found_is_none(found)
    }

    /// All versions under `subject` (empty when the subject does not exist).
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let found = self
            .call(Method::GET, &["subjects", subject, "versions"], &[], None)
            .await;
        Ok(not_found_is_none(found)?.unwrap_or_default())
    }

    /// The compatibility level in force for `subject` (its own, else the global one).
    pub async fn compatibility_level(&self, subject: &str) -> Result<String, RegistryError> {
        let own: Result<ConfigBody, _> = self
            .call(Method::GET, &["config", subject], &[], None)
            .await;
        match own {
            Ok(config) => Ok(config.compatibility_level),
            Err(e)
                if e.error_code()
                    .is_some_and(|c| c == 40408 || c == 40401 || c == 404) =>
            {
                let global: ConfigBody = self.call(Method::GET, &["config"], &[], None).await?;
                Ok(global.compatibility_level)
            }
            Err(e) => Err(e),
        }
    }

    /// Sets the compatibility level of `subject` (e.g. `BACKWARD_TRANSITIVE`).
    pub async fn set_compatibility_level(
        &self,
        subject: &str,
        level: &str,
    ) -> Result<(), RegistryError> {
        let body = json!({ "compatibility": level });
        let _: serde_json::Value = self
            .call(Method::PUT, &["config", subject], &[], Some(&body))
            .await?;
        Ok(())
    }

    /// Asks whether `schema` is compatible with `version` of `subject` under the subject's level.
    pub async fn check_against(
        &self,
        subject: &str,
        version: u32,
        schema: &str,
    ) -> Result<CompatibilityAnswer, RegistryError> {
        let version = version.to_string();
        self.call(
            Method::POST,
            &["compatibility", "subjects", subject, "versions", &version],
            &[("verbose", "true")],
            Some(&schema_body(schema)),
        )
        .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<T, RegistryError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| RegistryError::Config(format!("{} cannot be a base url", self.base)))?
            .pop_if_empty()
            .extend(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self
            .http
            .request(method, url.clone())
            .header("Accept", CONTENT_TYPE);
        if let Some(user) = &self.endpoint.username {
            request = request.basic_auth(user, self.endpoint.password.as_deref());
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", CONTENT_TYPE)
                .body(body.to_string());
        }
        let http = |source| RegistryError::Http {
            url: url.to_string(),
            source,
        };
        let response = request.send().await.map_err(http)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(http)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| RegistryError::Api {
                status: status.as_u16(),
                error_code: 0,
                message: format!("unreadable answer from {url}: {e}"),
            });
        }
        Err(api_error(status, &bytes))
    }
}

fn schema_body(schema: &str) -> serde_json::Value {
    json!({ "schema": schema, "schemaType": "AVRO" })
}

fn api_error(status: StatusCode, body: &[u8]) -> RegistryError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => RegistryError::Api {
            status: status.as_u16(),
            error_code: e.error_code,
            message: e.message,
        },
        Err(_) => RegistryError::Api {
            status: status.as_u16(),
            error_code: i64::from(status.as_u16()),
            message: String::from_utf8_lossy(body).chars().take(500).collect(),
        },
    }
}

/// Subject or schema not found (40401, 40402, 40403) becomes `None`.
fn not_found_is_none<T>(result: Result<T, RegistryError>) -> Result<Option<T>, RegistryError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(RegistryError::Api { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
