//! Exclusion rules: usage and cost that must stay out of the accounting (e.g. a linked Azure
//! Databricks cluster). Excluded input is counted in metrics, never windowed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::standard::{CostEvent, UsageEvent};

/// What to leave out. An event matching any rule is excluded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExclusionRules {
    /// Cluster ids, exactly.
    pub cluster_ids: Vec<String>,
    /// Namespace glob patterns (`kube-*`, `databricks-?`).
    pub namespaces: Vec<String>,
    /// Labels: an event whose labels contain one of these key/value pairs.
    pub labels: BTreeMap<String, String>,
    /// Cost providers (`azure`).
    pub providers: Vec<String>,
    /// Billing account or sub account ids.
    pub accounts: Vec<String>,
}

/// [`ExclusionRules`] with the patterns compiled.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    rules: ExclusionRules,
    namespaces: Vec<glob::Pattern>,
}

/// Which rule excluded an event (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExcludedBy {
    /// `cluster_ids`.
    Cluster,
    /// `namespaces`.
    Namespace,
    /// `labels`.
    Label,
    /// `providers`.
    Provider,
    /// `accounts`.
    Account,
}

impl ExcludedBy {
    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExcludedBy::Cluster => "cluster",
            ExcludedBy::Namespace => "namespace",
            ExcludedBy::Label => "label",
            ExcludedBy::Provider => "provider",
            ExcludedBy::Account => "account",
        }
    }
}

impl Exclusions {
    /// Compiles the rules; fails on a malformed namespace pattern.
    pub fn new(rules: ExclusionRules) -> Result<Self, glob::PatternError> {
        let namespaces = rules
            .namespaces
            .iter()
            .map(|p| glob::Pattern::new(p))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules, namespaces })
    }

    /// Whether a usage event is excluded, and by which rule.
    pub fn usage(&self, event: &UsageEvent) -> Option<ExcludedBy> {
        let s = &event.subject;
        self.cluster(&s.cluster_id)
            .or_else(|| s.namespace.as_deref().and_then(|n| self.namespace(n)))
            .or_else(|| self.labels(&s.labels))
    }

    /// Whether a cost event is excluded, and by which rule.
    pub fn cost(&self, event: &CostEvent) -> Option<ExcludedBy> {
        let accounts = [
            Some(&event.billing_account_id),
            event.sub_account_id.as_ref(),
        ];
        if self
            .rules
            .providers
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&event.provider))
        {
            return Some(ExcludedBy::Provider);
        }
        if accounts
            .into_iter()
            .flatten()
            .any(|a| self.rules.accounts.contains(a))
        {
            return Some(ExcludedBy::Account);
        }
        event
            .cluster_id
            .as_deref()
            .and_then(|c| self.cluster(c))
            .or_else(|| event.namespace.as_deref().and_then(|n| self.namespace(n)))
            .or_else(|| self.labels(&event.labels))
    }

    fn cluster(&self, cluster_id: &str) -> Option<ExcludedBy> {
        self.rules
            .cluster_ids
            .iter()
            .any(|c| c == cluster_id)
            .then_some(ExcludedBy::Cluster)
    }

    fn namespace(&self, namespace: &str) -> Option<ExcludedBy> {
        self.namespaces
            .iter()
            .any(|p| p.matches(namespace))
            .then_some(ExcludedBy::Namespace)
    }

    fn labels(&self, labels: &BTreeMap<String, String>) -> Option<ExcludedBy> {
        self.rules
            .labels
            .iter()
            .any(|(k, v)| labels.get(k) == Some(v))
            .then_some(ExcludedBy::Label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standard::WorkloadSubject;

    fn event(cluster: &str, namespace: &str, labels: &[(&str, &str)]) -> UsageEvent {
        UsageEvent {
            specversion: "1.0".into(),
            id: "1".into(),
            source: "s".into(),
            event_type: "t".into(),
            time: 0,
            start: 0,
            end: 0,
            subject: WorkloadSubject {
                cluster_id: cluster.into(),
                namespace: Some(namespace.into()),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
            measurements: vec![],
        }
    }

    #[test]
    fn each_rule_excludes_what_it_names_and_nothing_else() {
        let rules = Exclusions::new(ExclusionRules {
            cluster_ids: vec!["azure-databricks".into()],
            namespaces: vec!["kube-*".into()],
            labels: BTreeMap::from([("accounting".into(), "exclude".into())]),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            rules.usage(&event("azure-databricks", "jobs", &[])),
            Some(ExcludedBy::Cluster)
        );
        assert_eq!(
            rules.usage(&event("gke", "kube-system", &[])),
            Some(ExcludedBy::Namespace)
        );
        assert_eq!(
            rules.usage(&event("gke", "a", &[("accounting", "exclude")])),
            Some(ExcludedBy::Label)
        );
        assert_eq!(
            rules.usage(&event("gke", "a", &[("accounting", "include")])),
            None
        );
        assert_eq!(rules.usage(&event("gke", "kubeflow", &[])), None);
    }
}
