//! Which usage a bill line is apportioned by, from its provider, service and SKU.
//!
//! A table of rules, first match wins: the configured overrides, then the built-in table, then
//! [`CostCategory::Other`]. Patterns are case-insensitive globs (`*`, `?`).

use serde::{Deserialize, Serialize};

use crate::standard::CostCategory;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRule {
    /// Provider (`gcp`, `azure`, ...); `*` or absent: any.
    #[serde(default = "any")]
    pub provider: String,
    /// Service name glob (`Compute Engine`, `Virtual Machines`).
    #[serde(default = "any")]
    pub service: String,
    /// SKU description glob (`* Core running in *`).
    #[serde(default = "any")]
    pub sku: String,
    /// The category of matching lines.
    pub category: CostCategory,
}

fn any() -> String {
    "*".into()
}

/// Built-in rules, after any override. Order matters: specific before general.
const BUILTIN: &[(&str, &str, &str, CostCategory)] = &[
    ("gcp", "*", "*", CostCategory::Other),
];

#[derive(Debug, Clone)]
struct CompiledRule {
    provider: glob::Pattern,
    service: glob::Pattern,
    sku: glob::Pattern,
    category: CostCategory,
}

/// The compiled table.
#[derive(Debug, Clone)]
pub struct CategoryRules {
    rules: Vec<CompiledRule>,
}

impl Default for CategoryRules {
    fn default() -> Self {
        Self::with_overrides(&[]).expect("the built-in category rules compile")
    }
}

impl CategoryRules {
    /// `overrides` first, then the built-in table.
    pub fn with_overrides(overrides: &[CategoryRule]) -> Result<Self, glob::PatternError> {
        let builtin = BUILTIN.iter().map(|&(provider, service, sku, category)| CategoryRule {
            provider: provider.into(),
            service: service.into(),
            sku: sku.into(),
            category,
        });
        let rules = overrides
            .iter()
            .cloned()
            .chain(builtin)
            .map(|rule| {
                let compile = |p: &str| glob::Pattern::new(&p.to_lowercase());
                Ok(CompiledRule {
                    provider: compile(&rule.provider)?,
                    service: compile(&rule.service)?,
                    sku: compile(&rule.sku)?,
                    category: rule.category,
                })
            })
            .collect::<Result<_, glob::PatternError>>()?;
        Ok(Self { rules })
    }

    /// The category of a line; [`CostCategory::Other`] when no rule matches.
    pub fn category(&self, provider: &str, service: &str, sku: &str) -> CostCategory {
        let (provider, service, sku) = (
            provider.to_lowercase(),
            service.to_lowercase(),
            sku.to_lowercase(),
        );
        self.rules
            .iter()
            .find(|r| {
                r.provider.matches(&provider) && r.service.matches(&service) && r.sku.matches(&sku)
            })
            .map_or(CostCategory::Other, |r| r.category)
    }
}
