//! A field-level, diff-like description of how a schema changed, for humans reading CI output.

use apache_avro::schema::RecordSchema;
use apache_avro::Schema;

/// Lines describing how `new` differs from `old`: `- ` removed, `+ ` added, `~ ` changed.
///
/// ```
/// use apache_avro::Schema;
/// use usage_tracker::standard::diff::schema_diff;
/// let old = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#).unwrap();
/// let new = Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"long"}]}"#).unwrap();
/// assert_eq!(schema_diff(&old, &new), vec![
///     "~ R.a: string -> int".to_string(),
///     "+ R.b: long (no default: old data cannot fill it)".to_string(),
/// ]);
/// ```
pub fn schema_diff(old: &Schema, new: &Schema) -> Vec<String> {
    let mut lines = Vec::new();
    diff_at(&root_name(new), old, new, &mut lines);
    lines
}

fn root_name(schema: &Schema) -> String {
    schema
        .name()
        .map(|n| n.name().to_string())
        .unwrap_or_else(|| "<root>".into())
}

fn diff_at(path: &str, old: &Schema, new: &Schema, lines: &mut Vec<String>) {
    match (old, new) {
        (Schema::Record(o), Schema::Record(n)) => diff_records(path, o, n, lines),
        (Schema::Array(o), Schema::Array(n)) => {
            diff_at(&format!("{path}[]"), &o.items, &n.items, lines)
        }
        (Schema::Map(o), Schema::Map(n)) => {
            diff_at(&format!("{path}{{}}"), &o.types, &n.types, lines)
        }
        (Schema::Enum(o), Schema::Enum(n)) => {
            for gone in o.symbols.iter().filter(|s| !n.symbols.contains(s)) {
                lines.push(format!("- {path}: enum symbol {gone}"));
            }
            for added in n.symbols.iter().filter(|s| !o.symbols.contains(s)) {
                lines.push(format!("+ {path}: enum symbol {added}"));
            }
        }
        _ if old.canonical_form() != new.canonical_form() => {
            lines.push(format!("~ {path}: {} -> {}", label(old), label(new)));
        }
        _ => {}
    }
}

fn diff_records(path: &str, old: &RecordSchema, new: &RecordSchema, lines: &mut Vec<String>) {
    for field in &old.fields {
        if !new.fields.iter().any(|f| f.name == field.name) {
            lines.push(format!("- {path}.{}: {}", field.name, label(&field.schema)));
        }
    }
    for field in &new.fields {
        let at = format!("{path}.{}", field.name);
        match old.fields.iter().find(|f| f.name == field.name) {
            Some(before) => diff_at(&at, &before.schema, &field.schema, lines),
            None if field.default.is_some() => {
                lines.push(format!("+ {at}: {} (with default)", label(&field.schema)))
            }
            None => lines.push(format!(
                "+ {at}: {} (no default: old data cannot fill it)",
                label(&field.schema)
            )),
        }
    }
}

/// A short type label: `string`, `null | string`, `array<Measurement>`, `record WorkloadSubject`.
fn label(schema: &Schema) -> String {
    match schema {
        Schema::Union(u) => u
            .variants()
            .iter()
            .map(label)
            .collect::<Vec<_>>()
            .join(" | "),
        Schema::Array(a) => format!("array<{}>", label(&a.items)),
        Schema::Map(m) => format!("map<{}>", label(&m.types)),
        Schema::Record(r) => format!("record {}", r.name.name()),
        Schema::Enum(e) => format!("enum {}", e.name.name()),
        Schema::Fixed(f) => format!("fixed {}", f.name.name()),
        Schema::Ref { name } => name.name().to_string(),
        other => other.canonical_form().trim_matches('"').to_string(),
    }
}
