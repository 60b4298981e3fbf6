//! Which usage a bill line is apportioned by, from its provider, service and SKU.
//!
//! A table of rules, first match wins: the configured overrides, then the built-in table, then
//! [`CostCategory::Other`]. Patterns are case-insensitive globs (`*`, `?`).

use serde::{Deserialize, Serialize};

use crate::standard::CostCategory;
use crate::standard::CostCategory::{Compute, Gpu, License, Memory, Network, Other, Storage};

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

/// Built-in rules, after any override: `(provider, service, sku, category)`. Order matters:
/// specific before general, the first match wins.
///
/// - `gcp`: `service` is the Cloud Billing export's `service.description`, `sku` its
///   `sku.description` (the FOCUS view's ServiceName / ChargeDescription carry the same texts).
/// - `azure`: `service` is the FOCUS ServiceName of Azure Cost Management's export, `sku` the
///   ChargeDescription (see [`crate::billing::focus`]).
///
/// Licences before everything (a licence fee is not the cpu it runs on), egress before the
/// service it leaves (Cloud Storage egress is network, not storage), then per-service SKU
/// families, then the service, then `other`. GPU SKU families come before their service's
/// catch-all (a GPU line is apportioned by gpu, not cpu), but after the cpu, memory and disk
/// families whose descriptions can name a GPU machine or pod ("Autopilot GPU Pod Local SSD").
/// `docs/billing-exporters.md` lists the same table.
pub const BUILTIN: &[(&str, &str, &str, CostCategory)] = &[
    // --- GCP: licences, any service ("Licensing Fee for Windows Server 2022 ...").
    ("gcp", "*", "licensing fee for *", License),
    ("gcp", "*", "* license fee*", License),
    // --- GCP: network, any service (egress, data transfer, NAT, IPs, load balancing).
    ("gcp", "*", "*egress*", Network),
    ("gcp", "*", "*data transfer*", Network),
    ("gcp", "*", "download *", Network),
    ("gcp", "Networking", "*", Network),
    ("gcp", "Cloud Load Balancing", "*", Network),
    ("gcp", "Cloud NAT", "*", Network),
    ("gcp", "Compute Engine", "network *", Network),
    ("gcp", "Compute Engine", "*ip charge*", Network),
    ("gcp", "Compute Engine", "*ip address*", Network),
    // --- GCP Compute Engine: memory, cores, then GPUs ("Nvidia Tesla T4 GPU running in
    // Americas", "Commitment v1: Nvidia L4 GPU ..."), then disks.
    ("gcp", "Compute Engine", "*instance ram*", Memory),
    ("gcp", "Compute Engine", "commitment*: ram *", Memory),
    ("gcp", "Compute Engine", "*instance core*", Compute),
    ("gcp", "Compute Engine", "commitment*: cpu *", Compute),
    ("gcp", "Compute Engine", "*gpu*", Gpu),
    ("gcp", "Compute Engine", "*pd capacity*", Storage),
    ("gcp", "Compute Engine", "*pd snapshot*", Storage),
    ("gcp", "Compute Engine", "*hyperdisk*", Storage),
    ("gcp", "Compute Engine", "*local storage*", Storage),
    ("gcp", "Compute Engine", "storage *", Storage),
    ("gcp", "Compute Engine", "*", Compute),
    // --- GCP Kubernetes Engine: Autopilot pod requests by resource (a GPU pod's mCPU, memory
    // and local SSD too), then its GPU requests and accelerator-class GPU premiums ("Autopilot
    // T4 Premium", "Autopilot A100 80GB Spot Premium"); the cluster fee is other.
    ("gcp", "Kubernetes Engine", "*mcpu*", Compute),
    ("gcp", "Kubernetes Engine", "*memory*", Memory),
    ("gcp", "Kubernetes Engine", "*ephemeral storage*", Storage),
    ("gcp", "Kubernetes Engine", "*local ssd*", Storage),
    ("gcp", "Kubernetes Engine", "*gpu*", Gpu),
    ("gcp", "Kubernetes Engine", "autopilot ?4 *premium*", Gpu),
    ("gcp", "Kubernetes Engine", "autopilot ?100 *premium*", Gpu),
    ("gcp", "Kubernetes Engine", "*", Other),
    // --- GCP storage services.
    ("gcp", "Cloud Storage", "*", Storage),
    ("gcp", "Filestore", "*", Storage),
    ("gcp", "Artifact Registry", "*", Storage),
    ("gcp", "*", "*", Other),
    // --- Azure (FOCUS ServiceName): licences, network, compute, storage, the AKS fee.
    ("azure", "Virtual Machines Licenses", "*", License),
    ("azure", "*", "*license*", License),
    ("azure", "Bandwidth", "*", Network),
    ("azure", "Virtual Network", "*", Network),
    ("azure", "Load Balancer", "*", Network),
    ("azure", "NAT Gateway", "*", Network),
    ("azure", "Azure NAT Gateway", "*", Network),
    ("azure", "Content Delivery Network", "*", Network),
    ("azure", "*", "*data transfer*", Network),
    // GPU VM series (NC, ND, NG, NV), by meter ("NC6s v3", "NVadsA10 v5"), product ("Virtual
    // Machines NCasT4 v3 Series - NC4as T4 v3 - US East") or ARM size ("Standard_NC4as_T4_v3").
    ("azure", "Virtual Machine*", "n[cdgv]*", Gpu),
    ("azure", "Virtual Machine*", "* n[cdgv]*", Gpu),
    ("azure", "Virtual Machine*", "*_n[cdgv]*", Gpu),
    ("azure", "Virtual Machines", "*", Compute),
    ("azure", "Virtual Machine Scale Sets", "*", Compute),
    ("azure", "Azure Databricks", "*", Compute),
    ("azure", "Storage", "*", Storage),
    ("azure", "Storage Accounts", "*", Storage),
    ("azure", "Managed Disks", "*", Storage),
    ("azure", "Azure Files", "*", Storage),
    ("azure", "Container Registry", "*", Storage),
    ("azure", "Azure Container Registry", "*", Storage),
    ("azure", "Azure Kubernetes Service", "*", Other),
    ("azure", "*", "*", Other),
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
        let builtin = BUILTIN
            .iter()
            .map(|&(provider, service, sku, category)| CategoryRule {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin(provider: &str, service: &str, sku: &str) -> CostCategory {
        CategoryRules::default().category(provider, service, sku)
    }

    #[test]
    fn gcp_compute_engine_skus() {
        let cases = [
            ("N2 Instance Core running in Frankfurt", Compute),
            ("E2 Instance Core running in Belgium", Compute),
            (
                "Spot Preemptible N2D AMD Instance Core running in Netherlands",
                Compute,
            ),
            ("N2 Instance Ram running in Frankfurt", Memory),
            ("E2 Instance Ram running in Belgium", Memory),
            ("Commitment v1: Ram in Frankfurt for 1 Year", Memory),
            ("Commitment v1: Cpu in Frankfurt for 1 Year", Compute),
            ("Nvidia Tesla T4 GPU running in Frankfurt", Gpu),
            (
                "Nvidia L4 GPU attached to Spot Preemptible VMs running in Belgium",
                Gpu,
            ),
            ("Storage PD Capacity in Frankfurt", Storage),
            ("SSD backed PD Capacity in Frankfurt", Storage),
            ("Balanced PD Capacity in Frankfurt", Storage),
            ("Regional Balanced PD Capacity in Frankfurt", Storage),
            ("Storage PD Snapshot in Frankfurt", Storage),
            ("Hyperdisk Balanced Capacity in Frankfurt", Storage),
            ("SSD backed Local Storage in Frankfurt", Storage),
            ("Storage Image", Storage),
            (
                "Network Internet Egress from Frankfurt to Americas",
                Network,
            ),
            ("Network Inter Zone Egress", Network),
            (
                "Network Load Balancing: Forwarding Rule Minimum Service Charge in Frankfurt",
                Network,
            ),
            ("External IP Charge on a Standard VM", Network),
            (
                "Licensing Fee for Windows Server 2022 Datacenter Edition (CPU cost)",
                License,
            ),
            ("Licensing Fee for RHEL 9 (RAM cost)", License),
            (
                "Micro Instance with burstable CPU running in Frankfurt",
                Compute,
            ),
        ];
        for (sku, category) in cases {
            assert_eq!(builtin("gcp", "Compute Engine", sku), category, "{sku}");
        }
    }

    #[test]
    fn gcp_compute_engine_gpu_skus_are_gpu() {
        let cases = [
            "Nvidia Tesla T4 GPU running in Americas",
            "NVIDIA L4 GPU attached to Spot Preemptible VMs running in Europe",
            "Nvidia Tesla V100 GPU attached to Spot Preemptible VMs running in Americas",
            "Nvidia Tesla A100 GPU running in Americas",
            "Nvidia Tesla A100 80GB GPU running in EMEA",
            "Nvidia H100 80GB Plus GPU running in Americas",
            "Nvidia Tesla T4 Virtual Workstation GPU running in Netherlands",
            "Commitment v1: Nvidia Tesla T4 GPU running in Americas for 1 Year",
            "Commitment v1: Nvidia Tesla A100 GPU running in Americas for 3 Year",
            "Commitment v1: Nvidia L4 GPU in Frankfurt for 1 Year",
        ];
        for sku in cases {
            assert_eq!(builtin("gcp", "Compute Engine", sku), Gpu, "{sku}");
        }
    }

    #[test]
    fn gcp_cores_ram_and_disks_of_gpu_machines_are_not_gpu() {
        let cases = [
            ("N1 Predefined Instance Core running in Americas", Compute),
            ("N1 Predefined Instance Ram running in Americas", Memory),
            ("A2 Instance Core running in Americas", Compute),
            ("G2 Instance Ram running in Netherlands", Memory),
            (
                "Spot Preemptible A3 Instance Core running in Americas",
                Compute,
            ),
            // A description naming the GPU machine type is still its cores.
            ("A2 Highgpu Instance Core running in Americas", Compute),
            ("Commitment v1: A2 Cpu in Americas for 1 Year", Compute),
            ("SSD backed Local Storage in Americas", Storage),
            ("Network Inter Zone Egress", Network),
        ];
        for (sku, category) in cases {
            assert_eq!(builtin("gcp", "Compute Engine", sku), category, "{sku}");
        }
    }

    #[test]
    fn gcp_autopilot_gpu_pods() {
        let cases = [
            ("Autopilot NVIDIA T4 Pod GPU Requests (europe-west4)", Gpu),
            (
                "Autopilot NVIDIA L4 Spot Pod GPU Requests (us-central1)",
                Gpu,
            ),
            (
                "Autopilot NVIDIA A100 80GB Pod GPU Requests (us-central1)",
                Gpu,
            ),
            ("Autopilot Pod GPU Requests (europe-west3)", Gpu),
            // Accelerator compute class: the GPU premiums name the model, not "GPU".
            ("Autopilot T4 Premium (us-central1)", Gpu),
            ("Autopilot L4 Spot Premium (europe-west4)", Gpu),
            ("Autopilot A100 80GB Spot Premium (us-central1)", Gpu),
            ("Autopilot H100 80GB Premium (us-central1)", Gpu),
            // A GPU pod's cpu, memory and disk are apportioned by those.
            (
                "Autopilot NVIDIA T4 Pod mCPU Requests (europe-west4)",
                Compute,
            ),
            (
                "Autopilot NVIDIA L4 Spot Pod Memory Requests (us-central1)",
                Memory,
            ),
            ("Autopilot GPU Pod Local SSD (us-central1)", Storage),
            ("Autopilot Accelerator Memory Premium (us-central1)", Memory),
            // No rule names it: not gpu, the service's catch-all.
            ("Autopilot Accelerator CPU Premium (us-central1)", Other),
            ("Autopilot Pod mCPU Requests (europe-west3)", Compute),
            ("Regional Kubernetes Clusters", Other),
        ];
        for (sku, category) in cases {
            assert_eq!(builtin("gcp", "Kubernetes Engine", sku), category, "{sku}");
        }
    }

    #[test]
    fn gpu_in_another_gcp_service_is_not_gpu() {
        // Vertex AI runs on no cluster of ours: no gpu usage to apportion it by.
        let cases = [
            (
                "Vertex AI",
                "Vertex AI: Online/Batch Prediction Nvidia Tesla T4 GPU running in Americas",
            ),
            ("Cloud Logging", "Log Volume GPU"),
        ];
        for (service, sku) in cases {
            assert_eq!(builtin("gcp", service, sku), Other, "{service} / {sku}");
        }
        // Nor is a GPU-looking text of another provider's table.
        assert_eq!(
            builtin(
                "azure",
                "Azure Monitor",
                "Nvidia Tesla T4 GPU running in Americas"
            ),
            Other
        );
    }

    #[test]
    fn azure_gpu_vm_series_are_gpu() {
        let cases = [
            // Meter names (SkuMeter / x_SkuMeterName, and ChargeDescription in most exports).
            "NC6s v3",
            "NC6s v3 Low Priority",
            "NC4as T4 v3",
            "NC8as T4 v3 Spot",
            "NC24ads A100 v4",
            "NC40adsH100v5",
            "NCC40ads H100 v5",
            "ND40rs v2",
            "ND96asr v4",
            "ND96amsr A100 v4",
            "ND96isr H100 v5",
            "NV6",
            "NV12s v3",
            "NV4as v4",
            "NVadsA10 v5",
            "NV36ads A10 v5",
            "NG8ads V620 v1",
            // Product names.
            "Virtual Machines NCasT4 v3 Series - NC4as T4 v3 - US East",
            "Virtual Machines NCSv3 Series Windows - NC6s v3 - EU West",
            "Virtual Machines NVadsA10v5 Series",
            // ARM sizes.
            "Standard_NC4as_T4_v3",
            "Standard_ND96asr_v4",
            "Reserved VM Instance, Standard_NC24ads_A100_v4, EU West, 1 Year",
        ];
        for sku in cases {
            assert_eq!(builtin("azure", "Virtual Machines", sku), Gpu, "{sku}");
        }
        assert_eq!(
            builtin("azure", "Virtual Machine Scale Sets", "NC24ads A100 v4"),
            Gpu
        );
    }

    #[test]
    fn azure_other_vm_series_are_not_gpu() {
        let cases = [
            ("Virtual Machines", "D4s v5", Compute),
            ("Virtual Machines", "Standard_D4s_v5", Compute),
            (
                "Virtual Machines",
                "Virtual Machines Dsv5 Series - D4s v5 - US North Central",
                Compute,
            ),
            ("Virtual Machines", "DC4s v3", Compute),
            ("Virtual Machines", "E8ds v5 Spot", Compute),
            ("Virtual Machines", "HB120rs v3", Compute),
            // NP: FPGAs, not GPUs.
            ("Virtual Machines", "NP10s", Compute),
            ("Virtual Machine Scale Sets", "Standard_E4s_v5", Compute),
            // The Windows licence of a GPU VM is a licence.
            (
                "Virtual Machines Licenses",
                "NC6s v3 Windows Server",
                License,
            ),
            ("Azure Databricks", "Premium Jobs Compute DBU", Compute),
            ("Azure Machine Learning", "NC6s v3", Other),
        ];
        for (service, sku, category) in cases {
            assert_eq!(
                builtin("azure", service, sku),
                category,
                "{service} / {sku}"
            );
        }
    }

    #[test]
    fn gcp_other_services() {
        let cases = [
            ("Kubernetes Engine", "Regional Kubernetes Clusters", Other),
            ("Kubernetes Engine", "Zonal Kubernetes Clusters", Other),
            (
                "Kubernetes Engine",
                "Autopilot Pod mCPU Requests (europe-west3)",
                Compute,
            ),
            (
                "Kubernetes Engine",
                "Autopilot Pod Memory Requests (europe-west3)",
                Memory,
            ),
            (
                "Kubernetes Engine",
                "Autopilot Pod Ephemeral Storage Requests (europe-west3)",
                Storage,
            ),
            ("Cloud Storage", "Standard Storage Frankfurt", Storage),
            (
                "Cloud Storage",
                "Regional Standard Class A Operations",
                Storage,
            ),
            (
                "Cloud Storage",
                "Download Worldwide Destinations (excluding Asia & Australia)",
                Network,
            ),
            (
                "Cloud Storage",
                "Networking Traffic Egress GCP Inter Region within Europe",
                Network,
            ),
            ("Networking", "Networking Cloud NAT Gateway Uptime", Network),
            ("Cloud Logging", "Log Volume", Other),
            ("Cloud SQL", "DB custom CORE running in Frankfurt", Other),
        ];
        for (service, sku, category) in cases {
            assert_eq!(builtin("gcp", service, sku), category, "{service} / {sku}");
        }
    }

    #[test]
    fn azure_focus_service_names() {
        let cases = [
            ("Virtual Machines", "D4s v5", Compute),
            ("Virtual Machines Licenses", "Windows Server", License),
            ("Azure Databricks", "Premium Jobs Compute DBU", Compute),
            (
                "Storage",
                "Standard SSD Managed Disks E10 LRS Disk",
                Storage,
            ),
            ("Storage Accounts", "Hot LRS Data Stored", Storage),
            ("Bandwidth", "Standard Data Transfer Out", Network),
            ("Virtual Network", "Standard IPv4 Static Public IP", Network),
            ("Azure Kubernetes Service", "Standard Uptime SLA", Other),
            ("Azure Monitor", "Analytics Logs Data Ingestion", Other),
        ];
        for (service, sku, category) in cases {
            assert_eq!(
                builtin("azure", service, sku),
                category,
                "{service} / {sku}"
            );
        }
    }

    #[test]
    fn matching_is_case_insensitive_and_unknown_is_other() {
        assert_eq!(
            builtin("GCP", "COMPUTE ENGINE", "n2 instance ram running in x"),
            Memory
        );
        assert_eq!(builtin("aws", "Amazon EC2", "BoxUsage:m5.large"), Other);
        assert_eq!(builtin("gcp", "", ""), Other);
    }

    #[test]
    fn overrides_come_first() {
        let rules = CategoryRules::with_overrides(&[CategoryRule {
            provider: "gcp".into(),
            service: "Cloud SQL".into(),
            sku: "*".into(),
            category: Compute,
        }])
        .expect("compiles");
        assert_eq!(
            rules.category("gcp", "Cloud SQL", "DB custom CORE"),
            Compute
        );
        assert_eq!(
            rules.category("gcp", "Cloud Storage", "Standard Storage"),
            Storage
        );
    }

    #[test]
    fn an_override_can_name_gpu_and_reclassify_gpu_lines() {
        let rules: Vec<CategoryRule> = serde_json::from_str(
            r#"[{"provider": "onprem", "sku": "*a100*", "category": "gpu"},
                {"provider": "gcp", "service": "Compute Engine", "sku": "*virtual workstation gpu*", "category": "license"}]"#,
        )
        .expect("parses");
        let rules = CategoryRules::with_overrides(&rules).expect("compiles");
        assert_eq!(rules.category("onprem", "rate card", "A100 node"), Gpu);
        assert_eq!(
            rules.category(
                "gcp",
                "Compute Engine",
                "Nvidia Tesla T4 Virtual Workstation GPU running in Americas"
            ),
            License
        );
        assert_eq!(
            rules.category(
                "gcp",
                "Compute Engine",
                "Nvidia Tesla T4 GPU running in Americas"
            ),
            Gpu
        );
    }

    /// The shortest text a glob matches: `*` empty, `?` and `[...]` one character of it.
    fn example(pattern: &str) -> String {
        let mut text = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' => {}
                '?' => text.push('x'),
                '[' => {
                    let class: String = chars.by_ref().take_while(|&c| c != ']').collect();
                    match class.strip_prefix('!') {
                        Some(_) => text.push('~'),
                        None => text.extend(class.chars().next()),
                    }
                }
                c => text.push(c),
            }
        }
        text
    }

    #[test]
    fn no_builtin_rule_is_shadowed_by_an_earlier_one() {
        // The shortest text each rule matches must get the rule's own category.
        for (pattern, text) in [("n[cdgv]*", "nc"), ("* n[!m]?", " n~x"), ("a*b", "ab")] {
            assert_eq!(example(pattern), text);
            assert!(
                glob::Pattern::new(pattern).unwrap().matches(text),
                "{pattern}"
            );
        }
        for (i, &(provider, service, sku, category)) in BUILTIN.iter().enumerate() {
            let got = builtin(&example(provider), &example(service), &example(sku));
            assert_eq!(got, category, "rule {i}: {provider} / {service} / {sku}");
        }
    }

    #[test]
    fn the_documented_table_is_the_builtin_table() {
        let doc = include_str!("../../docs/billing-exporters.md");
        let documented: Vec<String> = doc
            .lines()
            .filter(|l| l.starts_with("| ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_digit))
            .map(|l| {
                l.split('|')
                    .skip(2)
                    .map(|c| c.trim().trim_matches('`'))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        let builtin: Vec<String> = BUILTIN
            .iter()
            .map(|&(provider, service, sku, category)| {
                let category = format!("{category:?}").to_lowercase();
                format!("{provider}|{service}|{sku}|{category}|")
            })
            .collect();
        assert_eq!(documented, builtin);
    }
}
