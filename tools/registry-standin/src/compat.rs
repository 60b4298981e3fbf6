//! Compatibility levels and Avro compatibility checks.
//!
//! Checks are delegated to
//! [`apache_avro::schema_compatibility::SchemaCompatibility::can_read`]. A
//! *partial* result (the reader can resolve only some of the writer's data,
//! e.g. an enum symbol or union branch is missing on the reader side) is
//! treated as incompatible, as Confluent's Avro checker does.

use std::fmt;
use std::str::FromStr;

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;
use serde::{Serialize, Serializer};

/// A Confluent compatibility level.
///
/// The default is `BACKWARD`, like Confluent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompatibilityLevel {
    /// No compatibility checks.
    None,
    /// The new schema can read data written with the latest version.
    #[default]
    Backward,
    /// The new schema can read data written with every version.
    BackwardTransitive,
    /// The latest version can read data written with the new schema.
    Forward,
    /// Every version can read data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every version.
    FullTransitive,
}

impl CompatibilityLevel {
    /// All levels, in Confluent's documentation order.
    pub const ALL: [CompatibilityLevel; 7] = [
        Self::None,
        Self::Backward,
        Self::Forward,
        Self::Full,
        Self::BackwardTransitive,
        Self::ForwardTransitive,
        Self::FullTransitive,
    ];

    /// The upper-case wire name, e.g. `"BACKWARD_TRANSITIVE"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the candidate is checked against every version (not only the latest).
    pub fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Whether the new schema must be able to read data written with old versions.
    pub fn checks_backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether old versions must be able to read data written with the new schema.
    pub fn checks_forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when parsing an unknown compatibility level name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCompatibilityLevel(pub String);

impl fmt::Display for UnknownCompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown compatibility level '{}'", self.0)
    }
}

impl std::error::Error for UnknownCompatibilityLevel {}

impl FromStr for CompatibilityLevel {
    type Err = UnknownCompatibilityLevel;

    /// Parses a level name case-insensitively (`"full_transitive"`, `"FULL_TRANSITIVE"`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        Self::ALL
            .into_iter()
            .find(|level| level.as_str() == upper)
            .ok_or_else(|| UnknownCompatibilityLevel(s.to_string()))
    }
}

impl Serialize for CompatibilityLevel {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Checks that `reader` can read everything written with `writer`.
///
/// Returns a readable reason on failure (including partial compatibility).
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(
            "the reader can resolve only part of the writer's data (an enum symbol or union \
             branch of the writer is missing in the reader)"
                .to_string(),
        ),
        Err(err) => Err(describe_error(&err)),
    }
}

/// Renders an error and its whole `source()` chain on one line.
fn describe_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    // Some messages embed pretty-printed (multi-line) schema dumps; keep one line.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks `candidate` against one existing `version` in the direction(s)
/// required by `level`. Returns one reason per failed direction (empty = compatible).
pub fn check_against_version(
    level: CompatibilityLevel,
    candidate: &Schema,
    version: u32,
    existing: &Schema,
) -> Vec<String> {
    let mut reasons = Vec::new();
    if level.checks_backward() {
        if let Err(err) = can_read(existing, candidate) {
            reasons.push(format!(
                "version {version}: the new schema cannot read data written with version \
                 {version} (backward): {err}"
            ));
        }
    }
    if level.checks_forward() {
        if let Err(err) = can_read(candidate, existing) {
            reasons.push(format!(
                "version {version}: version {version} cannot read data written with the new \
                 schema (forward): {err}"
            ));
        }
    }
    reasons
}

/// Checks `candidate` against a subject's existing versions (`(version, schema)`
/// in ascending version order) as registration does: against the latest version
/// for non-transitive levels, against all versions for transitive ones.
/// Returns the reasons for incompatibility (empty = compatible).
pub fn check_against_subject(
    level: CompatibilityLevel,
    candidate: &Schema,
    versions: &[(u32, &Schema)],
) -> Vec<String> {
    let to_check: &[(u32, &Schema)] = if level.is_transitive() {
        versions
    } else {
        match versions.split_last() {
            Some((last, _)) => std::slice::from_ref(last),
            None => &[],
        }
    };
    to_check
        .iter()
        .flat_map(|(version, existing)| check_against_version(level, candidate, *version, existing))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Schema {
        Schema::parse_str(s).unwrap()
    }

    #[test]
    fn level_names_round_trip() {
        for level in CompatibilityLevel::ALL {
            assert_eq!(level.as_str().parse::<CompatibilityLevel>(), Ok(level));
            assert_eq!(
                level.as_str().to_lowercase().parse::<CompatibilityLevel>(),
                Ok(level)
            );
        }
        assert!("SIDEWAYS".parse::<CompatibilityLevel>().is_err());
    }

    #[test]
    fn directions() {
        let v1 = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
        // Adds a field without default: new cannot read old (backward fails), old can read new.
        let v2 = parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
        );
        assert_eq!(
            check_against_version(CompatibilityLevel::Backward, &v2, 1, &v1).len(),
            1
        );
        assert!(check_against_version(CompatibilityLevel::Forward, &v2, 1, &v1).is_empty());
        assert_eq!(
            check_against_version(CompatibilityLevel::Full, &v2, 1, &v1).len(),
            1
        );
        assert!(check_against_version(CompatibilityLevel::None, &v2, 1, &v1).is_empty());
    }

    #[test]
    fn partial_enum_is_incompatible() {
        let abc = parse(r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#);
        let ab = parse(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#);
        assert!(can_read(&abc, &ab).is_err());
        assert!(can_read(&ab, &abc).is_ok());
    }

    #[test]
    fn nested_errors_are_described() {
        let w = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#);
        let r = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
        let reason = can_read(&w, &r).unwrap_err();
        assert!(reason.contains("Field 'a'"), "{reason}");
        assert!(!reason.contains('\n'), "{reason}");
    }
}
