//! In-memory registry state: global schema ids, subjects, versions and
//! compatibility configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use apache_avro::Schema;
use serde_json::Value;

use crate::compat::{self, CompatibilityLevel};
use crate::error::ApiError;

/// A schema submitted by a client, parsed and normalised.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    /// The schema text exactly as submitted.
    pub text: String,
    /// The parsed Avro schema.
    pub schema: Schema,
    /// Identity key: two submissions with the same key are "the same schema".
    pub key: String,
}

impl ParsedSchema {
    /// Parses an Avro schema string; failures map to 422 / 42201 `Invalid schema ...`.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let schema = Schema::parse_str(text).map_err(|err| {
            let detail = one_line(&err.to_string());
            ApiError::invalid_schema(format!("Invalid schema {detail}"))
        })?;
        let key = identity_key(&schema);
        Ok(Self {
            text: text.to_string(),
            schema,
            key,
        })
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Computes the identity of a schema.
///
/// The key is the Avro Parsing Canonical Form plus the attributes the canonical
/// form strips but that change how data is resolved or decoded (field `default`s,
/// `logicalType`s, `aliases`, custom properties). It ignores whitespace, attribute
/// order, equivalent namespace spellings and `doc` strings. Two schemas that
/// differ only in a default or a logical type therefore get different ids, as in
/// Confluent, instead of silently sharing one.
pub fn identity_key(schema: &Schema) -> String {
    let mut json = serde_json::to_value(schema).unwrap_or(Value::Null);
    strip_docs(&mut json);
    let mut key = schema.canonical_form();
    key.push('\n');
    write_sorted(&json, &mut key);
    key
}

/// Removes `doc` attributes from schema objects (but not from `default` values).
fn strip_docs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("doc");
            for (k, v) in map.iter_mut() {
                if k != "default" {
                    strip_docs(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_docs),
        _ => {}
    }
}

/// Writes compact JSON with object keys sorted, independent of serde_json features.
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_sorted(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A version selector from a URL path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    /// `latest` or `-1`.
    Latest,
    /// A version number in `[1, 2^31-1]`.
    Number(u32),
}

impl VersionSpec {
    /// Parses `latest`, `-1` or a positive 32-bit integer; anything else is 422 / 42202.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let trimmed = raw.trim();
        if trimmed == "latest" {
            return Ok(Self::Latest);
        }
        match trimmed.parse::<i32>() {
            Ok(-1) => Ok(Self::Latest),
            Ok(n) if n >= 1 => Ok(Self::Number(n as u32)),
            _ => Err(ApiError::invalid_version(raw)),
        }
    }
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    /// Subject name.
    pub subject: String,
    /// Version number (1-based).
    pub version: u32,
    /// Global schema id.
    pub id: u32,
    /// Schema text.
    pub schema: String,
}

#[derive(Debug)]
struct StoredSchema {
    text: String,
    schema: Schema,
}

#[derive(Debug)]
struct Store {
    /// Schemas by global id; id N lives at index N-1.
    schemas: Vec<StoredSchema>,
    /// Identity key -> global id.
    ids_by_key: HashMap<String, u32>,
    /// Subject -> schema ids of versions 1, 2, ...
    subjects: BTreeMap<String, Vec<u32>>,
    /// Subject-level compatibility overrides.
    subject_levels: HashMap<String, CompatibilityLevel>,
    /// Global compatibility level.
    global_level: CompatibilityLevel,
}

impl Store {
    fn schema(&self, id: u32) -> Option<&StoredSchema> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.schemas.get(index)
    }

    fn effective_level(&self, subject: &str) -> CompatibilityLevel {
        self.subject_levels
            .get(subject)
            .copied()
            .unwrap_or(self.global_level)
    }

    fn versions(&self, subject: &str) -> Result<&[u32], ApiError> {
        self.subjects
            .get(subject)
            .map(Vec::as_slice)
            .ok_or_else(|| ApiError::subject_not_found(subject))
    }

    /// Resolves a version selector to `(version, id)`.
    fn resolve(&self, subject: &str, spec: VersionSpec) -> Result<(u32, u32), ApiError> {
        let ids = self.versions(subject)?;
        let version = match spec {
            VersionSpec::Latest => ids.len() as u32,
            VersionSpec::Number(n) => n,
        };
        let id = (version as usize)
            .checked_sub(1)
            .and_then(|i| ids.get(i))
            .copied()
            .ok_or_else(|| ApiError::version_not_found(version))?;
        Ok((version, id))
    }

    fn subject_version(&self, subject: &str, version: u32, id: u32) -> SubjectVersion {
        SubjectVersion {
            subject: subject.to_string(),
            version,
            id,
            schema: self.schema(id).map(|s| s.text.clone()).unwrap_or_default(),
        }
    }

    /// `(version, schema)` pairs of a subject in ascending version order.
    fn version_schemas(&self, subject: &str) -> Vec<(u32, &Schema)> {
        self.subjects
            .get(subject)
            .map(|ids| {
                ids.iter()
                    .enumerate()
                    .filter_map(|(i, id)| Some((i as u32 + 1, &self.schema(*id)?.schema)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Shared, thread-safe registry state. Cloning is cheap and shares the state.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<RwLock<Store>>,
}

impl Default for Registry {
    /// An empty registry with global compatibility `BACKWARD`.
    fn default() -> Self {
        Self::new(CompatibilityLevel::default())
    }
}

impl Registry {
    /// Creates an empty registry whose global compatibility level is `default_compat`.
    pub fn new(default_compat: CompatibilityLevel) -> Self {
        Self {
            inner: Arc::new(RwLock::new(Store {
                schemas: Vec::new(),
                ids_by_key: HashMap::new(),
                subjects: BTreeMap::new(),
                subject_levels: HashMap::new(),
                global_level: default_compat,
            })),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `candidate` under `subject` and returns its global id.
    ///
    /// Idempotent when the schema is already a version of the subject. Otherwise the
    /// candidate is checked against the subject's effective compatibility level
    /// (409 on failure) and appended as a new version; the global id is reused if
    /// the same schema is already registered under any subject.
    pub fn register(&self, subject: &str, candidate: &ParsedSchema) -> Result<u32, ApiError> {
        let mut store = self.write();
        if let Some(&id) = store.ids_by_key.get(&candidate.key) {
            if store
                .subjects
                .get(subject)
                .is_some_and(|ids| ids.contains(&id))
            {
                return Ok(id);
            }
        }
        let level = store.effective_level(subject);
        let reasons = compat::check_against_subject(
            level,
            &candidate.schema,
            &store.version_schemas(subject),
        );
        if !reasons.is_empty() {
            return Err(ApiError::incompatible(subject, &reasons));
        }
        let id = match store.ids_by_key.get(&candidate.key) {
            Some(id) => *id,
            None => {
                store.schemas.push(StoredSchema {
                    text: candidate.text.clone(),
                    schema: candidate.schema.clone(),
                });
                let id = store.schemas.len() as u32;
                store.ids_by_key.insert(candidate.key.clone(), id);
                id
            }
        };
        store
            .subjects
            .entry(subject.to_string())
            .or_default()
            .push(id);
        Ok(id)
    }

    /// Finds `candidate` among the versions of `subject` (404 40401 / 40403 otherwise).
    pub fn lookup(
        &self,
        subject: &str,
        candidate: &ParsedSchema,
    ) -> Result<SubjectVersion, ApiError> {
        let store = self.read();
        let ids = store.versions(subject)?;
        let wanted = store
            .ids_by_key
            .get(&candidate.key)
            .copied()
            .ok_or_else(ApiError::schema_not_found)?;
        let index = ids
            .iter()
            .position(|id| *id == wanted)
            .ok_or_else(ApiError::schema_not_found)?;
        Ok(store.subject_version(subject, index as u32 + 1, wanted))
    }

    /// The schema text registered with global `id`, if any.
    pub fn schema_by_id(&self, id: u32) -> Option<String> {
        self.read().schema(id).map(|s| s.text.clone())
    }

    /// `(subject, version)` pairs using global `id`, or `None` if the id is unknown.
    pub fn subject_versions_for_id(&self, id: u32) -> Option<Vec<(String, u32)>> {
        let store = self.read();
        store.schema(id)?;
        Some(
            store
                .subjects
                .iter()
                .flat_map(|(subject, ids)| {
                    ids.iter()
                        .enumerate()
                        .filter(|(_, v)| **v == id)
                        .map(|(i, _)| (subject.clone(), i as u32 + 1))
                        .collect::<Vec<_>>()
                })
                .collect(),
        )
    }

    /// All subjects with at least one version, sorted.
    pub fn subjects(&self) -> Vec<String> {
        self.read().subjects.keys().cloned().collect()
    }

    /// Version numbers of `subject` (404 40401 if unknown).
    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, ApiError> {
        let store = self.read();
        let count = store.versions(subject)?.len() as u32;
        Ok((1..=count).collect())
    }

    /// One version of `subject` (404 40401 / 40402 if unknown).
    pub fn version(&self, subject: &str, spec: VersionSpec) -> Result<SubjectVersion, ApiError> {
        let store = self.read();
        let (version, id) = store.resolve(subject, spec)?;
        Ok(store.subject_version(subject, version, id))
    }

    /// Checks `candidate` against one version of `subject` using the subject's
    /// effective level. Returns the incompatibility reasons (empty = compatible).
    pub fn check_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        candidate: &ParsedSchema,
    ) -> Result<Vec<String>, ApiError> {
        let store = self.read();
        let (version, id) = store.resolve(subject, spec)?;
        let existing = &store
            .schema(id)
            .ok_or_else(|| ApiError::version_not_found(version))?
            .schema;
        Ok(compat::check_against_version(
            store.effective_level(subject),
            &candidate.schema,
            version,
            existing,
        ))
    }

    /// Checks `candidate` against `subject` as registration would (latest version,
    /// or all versions for transitive levels). Unknown subjects are compatible.
    pub fn check_subject(&self, subject: &str, candidate: &ParsedSchema) -> Vec<String> {
        let store = self.read();
        compat::check_against_subject(
            store.effective_level(subject),
            &candidate.schema,
            &store.version_schemas(subject),
        )
    }

    /// The global compatibility level.
    pub fn global_compatibility(&self) -> CompatibilityLevel {
        self.read().global_level
    }

    /// Sets the global compatibility level.
    pub fn set_global_compatibility(&self, level: CompatibilityLevel) {
        self.write().global_level = level;
    }

    /// The subject-level compatibility override, if configured.
    pub fn subject_compatibility(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.read().subject_levels.get(subject).copied()
    }

    /// Sets a subject-level compatibility override (the subject need not exist).
    pub fn set_subject_compatibility(&self, subject: &str, level: CompatibilityLevel) {
        self.write()
            .subject_levels
            .insert(subject.to_string(), level);
    }

    /// Removes a subject-level override and returns the previous level.
    ///
    /// 404 40408 if none was configured for an existing subject, 40401 if the
    /// subject neither has versions nor an override.
    pub fn delete_subject_compatibility(
        &self,
        subject: &str,
    ) -> Result<CompatibilityLevel, ApiError> {
        let mut store = self.write();
        match store.subject_levels.remove(subject) {
            Some(level) => Ok(level),
            None if store.subjects.contains_key(subject) => {
                Err(ApiError::subject_compatibility_not_configured(subject))
            }
            None => Err(ApiError::subject_not_found(subject)),
        }
    }

    /// The level applied to `subject`: its override, else the global level.
    pub fn effective_compatibility(&self, subject: &str) -> CompatibilityLevel {
        self.read().effective_level(subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_ignores_whitespace_and_docs_but_not_defaults() {
        let a = ParsedSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        )
        .unwrap();
        let b = ParsedSchema::parse(
            "{ \"name\": \"R\", \"type\": \"record\", \"doc\": \"hello\",\n  \"fields\": [ {\"name\": \"a\", \"type\": \"int\", \"doc\": \"x\"} ] }",
        )
        .unwrap();
        let c = ParsedSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":0}]}"#,
        )
        .unwrap();
        let d = ParsedSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"int","logicalType":"date"}}]}"#,
        )
        .unwrap();
        assert_eq!(a.key, b.key);
        assert_ne!(a.key, c.key);
        assert_ne!(a.key, d.key);
        assert_eq!(a.schema.canonical_form(), c.schema.canonical_form());
    }

    #[test]
    fn version_spec_parsing() {
        assert_eq!(VersionSpec::parse("latest").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("-1").unwrap(), VersionSpec::Latest);
        assert_eq!(VersionSpec::parse("7").unwrap(), VersionSpec::Number(7));
        assert_eq!(
            VersionSpec::parse("2147483647").unwrap(),
            VersionSpec::Number(i32::MAX as u32)
        );
        for bad in ["0", "-2", "abc", "2147483648", ""] {
            assert_eq!(
                VersionSpec::parse(bad).unwrap_err().error_code,
                42202,
                "{bad}"
            );
        }
    }
}
