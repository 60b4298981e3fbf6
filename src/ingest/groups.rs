//! Accounts below the namespace: which groups of workloads (`[aggregation]`) a usage event
//! counts in. Pure, no I/O.

use std::sync::Arc;

use thiserror::Error;

use crate::standard::limits::MAX_LABEL_KEY_LEN;
use crate::standard::{WorkloadSubject, UNLABELLED};
use crate::window::GroupKey;

/// The group dimensions configured: label keys, and the owning workload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregation {
    dimensions: Vec<Dimension>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Dimension {
    /// A pod label. Elastic stores `app.kubernetes.io/name` as `app_kubernetes_io/name`
    /// ("de-dotted"), so either spelling matches.
    Label {
        key: String,
        dedotted: String,
        /// `label:<key>`, the records' `group_by`.
        name: Arc<str>,
    },
    /// The owning workload, `<kind>/<name>`.
    Workload { name: Arc<str> },
}

/// A configuration that cannot be aggregated by.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AggregationError {
    /// Empty, too long, or with control characters.
    #[error("aggregation label key {0:?} must be 1 to {MAX_LABEL_KEY_LEN} bytes without control characters")]
    InvalidKey(String),
    /// Listed twice.
    #[error("aggregation label key {0:?} is listed twice")]
    Duplicate(String),
}

/// `group_by` of workload groups.
pub const WORKLOAD: &str = "workload";

impl Aggregation {
    /// Groups by each of `labels` and, if `workload`, by owning workload.
    pub fn new(labels: &[String], workload: bool) -> Result<Self, AggregationError> {
        let mut dimensions = Vec::with_capacity(labels.len() + 1);
        for key in labels {
            if key.is_empty() || key.len() > MAX_LABEL_KEY_LEN || key.chars().any(char::is_control)
            {
                return Err(AggregationError::InvalidKey(key.clone()));
            }
            if labels.iter().filter(|k| *k == key).count() > 1 {
                return Err(AggregationError::Duplicate(key.clone()));
            }
            dimensions.push(Dimension::Label {
                key: key.clone(),
                dedotted: key.replace('.', "_"),
                name: Arc::from(format!("label:{key}")),
            });
        }
        if workload {
            dimensions.push(Dimension::Workload {
                name: Arc::from(WORKLOAD),
            });
        }
        Ok(Self { dimensions })
    }

    /// Whether no group is configured.
    pub fn is_empty(&self) -> bool {
        self.dimensions.is_empty()
    }

    /// The group of `subject` in every dimension; [`UNLABELLED`] where it has no value.
    ///
    /// ```
    /// use usage_tracker::ingest::Aggregation;
    /// use usage_tracker::standard::WorkloadSubject;
    ///
    /// let aggregation = Aggregation::new(&["app.kubernetes.io/name".into(), "team".into()], true).unwrap();
    /// let mut subject = WorkloadSubject::default();
    /// subject.labels.insert("app_kubernetes_io/name".into(), "presto".into());
    /// subject.workload_kind = Some("Deployment".into());
    /// subject.workload_name = Some("presto-worker".into());
    /// let groups: Vec<(String, String)> = aggregation
    ///     .groups(&subject)
    ///     .into_iter()
    ///     .map(|(by, value)| (by.to_string(), value.to_string()))
    ///     .collect();
    /// assert_eq!(groups, [
    ///     ("label:app.kubernetes.io/name".into(), "presto".into()),
    ///     ("label:team".into(), "__unlabelled__".into()),
    ///     ("workload".into(), "Deployment/presto-worker".into()),
    /// ]);
    /// ```
    pub fn groups(&self, subject: &WorkloadSubject) -> Vec<GroupKey> {
        self.dimensions
            .iter()
            .map(|dimension| match dimension {
                Dimension::Label {
                    key,
                    dedotted,
                    name,
                } => {
                    let value = subject
                        .labels
                        .get(key)
                        .or_else(|| subject.labels.get(dedotted))
                        .filter(|v| !v.is_empty())
                        .map_or(UNLABELLED, String::as_str);
                    (name.clone(), Arc::from(value))
                }
                Dimension::Workload { name } => {
                    let value = match (&subject.workload_kind, &subject.workload_name) {
                        (Some(kind), Some(workload))
                            if !kind.is_empty() && !workload.is_empty() =>
                        {
                            Arc::from(format!("{kind}/{workload}"))
                        }
                        _ => Arc::from(UNLABELLED),
                    };
                    (name.clone(), value)
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_keys_win_over_dedotted_ones_and_empty_values_are_unlabelled() {
        let aggregation = Aggregation::new(&["hub.jupyter.org/username".into()], false).unwrap();
        let mut subject = WorkloadSubject::default();
        subject
            .labels
            .insert("hub_jupyter_org/username".into(), "bob".into());
        assert_eq!(aggregation.groups(&subject)[0].1.as_ref(), "bob");
        subject
            .labels
            .insert("hub.jupyter.org/username".into(), "alice".into());
        assert_eq!(aggregation.groups(&subject)[0].1.as_ref(), "alice");
        subject
            .labels
            .insert("hub.jupyter.org/username".into(), String::new());
        subject.labels.clear();
        assert_eq!(aggregation.groups(&subject)[0].1.as_ref(), UNLABELLED);
    }

    #[test]
    fn a_workload_needs_kind_and_name() {
        let aggregation = Aggregation::new(&[], true).unwrap();
        let mut subject = WorkloadSubject {
            workload_name: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(aggregation.groups(&subject)[0].1.as_ref(), UNLABELLED);
        subject.workload_kind = Some("StatefulSet".into());
        assert_eq!(aggregation.groups(&subject)[0].1.as_ref(), "StatefulSet/x");
    }

    #[test]
    fn bad_keys_are_refused() {
        assert_eq!(
            Aggregation::new(&["team".into(), "team".into()], false),
            Err(AggregationError::Duplicate("team".into()))
        );
        assert!(Aggregation::new(&[String::new()], false).is_err());
        assert!(Aggregation::new(&["a\nb".into()], false).is_err());
        assert!(Aggregation::new(&[], false).unwrap().is_empty());
    }
}
