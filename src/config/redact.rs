//! Secrets kept out of what is printed: URL passwords and secret Kafka properties.

use super::Settings;

/// What redacted secrets are shown as.
pub const REDACTED: &str = "***";

/// Whether a librdkafka property holds a secret: its name contains `password`, `secret`,
/// `sasl.jaas` or `ssl.key`.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "sasl.jaas", "ssl.key"]
        .iter()
        .any(|s| key.contains(s))
}

/// `url` with the password of its user info and of any `*password*` query parameter replaced by
/// [`REDACTED`] (`postgres://app:***@db/usage?sslmode=verify-full`).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let start = scheme_end + 3;
    let mut out = url[..start].to_owned();
    let before_query = url[start..]
        .find(['?', '#'])
        .map_or(url.len(), |i| start + i);
    let rest = match url[start..before_query].rfind('@') {
        Some(at) => {
            let userinfo = &url[start..start + at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(REDACTED);
                }
                None => out.push_str(userinfo),
            }
            &url[start + at..]
        }
        None => &url[start..],
    };
    let (rest, fragment) = rest.split_at(rest.find('#').unwrap_or(rest.len()));
    match rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                        format!("{key}={REDACTED}")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
        }
        None => out.push_str(rest),
    }
    out.push_str(fragment);
    out
}

pub(super) fn is_secret_path(path: &[String]) -> bool {
    match path {
        [section, key] => section == "database" && key == "url",
        [section, map, key] => {
            section == "kafka" && map.ends_with("properties") && is_secret_property(key)
        }
        _ => false,
    }
}

impl Settings {
    /// A copy safe to print: the password of `database.url` and `registry.url`, and every Kafka
    /// property that is a secret (see [`is_secret_property`]) or read from a file, are replaced by
    /// [`REDACTED`].
    pub fn redacted(&self) -> Settings {
        let mut settings = self.clone();
        settings.database.url = redact_url(&settings.database.url);
        settings.registry.url = redact_url(&settings.registry.url);
        let kafka = &mut settings.kafka;
        for properties in [
            &mut kafka.properties,
            &mut kafka.producer_properties,
            &mut kafka.consumer_properties,
        ] {
            for (key, value) in properties.iter_mut() {
                if is_secret_property(key) || kafka.properties_files.contains_key(key) {
                    *value = REDACTED.into();
                }
            }
        }
        settings
    }
}
