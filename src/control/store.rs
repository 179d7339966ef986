//! The store of the sources made through the admin API, in
//! `<data_dir>/admin/sources.json`, written whole and atomically (temp file, fsync, rename,
//! fsync of the directory) so a crash leaves the old file or the new one, never a mix. The file
//! holds the sources' secrets, so it is created readable by its owner only. A file that does not
//! parse stops the start: emptying it would silently delete every source a vendor relies on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{AuthConfig, ConfigIssue, SourceConfig};

const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read admin API source store {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin API source store {path} is corrupt ({reason}); fix or move it away, it is left as it is")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write admin API source store {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One API source as stored: its definition as the API took it (the same keys as a
/// `[[sources]]` table, secrets included), its times, and secrets in their grace period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiRecord {
    pub definition: serde_json::Value,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace: Option<GraceRecord>,
}

/// The auth table with the replaced secrets, and until when they still pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraceRecord {
    pub auth: serde_json::Value,
    /// Unix milliseconds.
    pub until: i64,
}

impl ApiRecord {
    pub fn id(&self) -> &str {
        self.definition
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    }

    /// The definition as a config source; errors carry the key path.
    pub fn source_config(&self) -> Result<SourceConfig, ConfigIssue> {
        parse_value(&self.definition)
    }
}

impl GraceRecord {
    pub fn auth_config(&self) -> Result<AuthConfig, ConfigIssue> {
        parse_value(&self.auth).map_err(|mut i| {
            i.path = if i.path.is_empty() {
                "auth".to_owned()
            } else {
                format!("auth.{}", i.path)
            };
            i
        })
    }

    pub fn until(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.until).unwrap_or(0))
    }
}

/// Deserializes a JSON value, reporting the path of the first problem.
pub fn parse_value<T: serde::de::DeserializeOwned>(
    v: &serde_json::Value,
) -> Result<T, ConfigIssue> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        use crate::config::parse_error::{split_nested, without_values};
        let path = e.path().to_string();
        // The value is never repeated: it may be a secret given in the wrong place.
        let message = without_values(&e.into_inner().to_string());
        let mut path = if path == "." { String::new() } else { path };
        // An error inside an auth table names its key in the message.
        let message = match split_nested(&message) {
            Some((inner, rest)) => {
                path = if path.is_empty() {
                    inner.to_owned()
                } else {
                    format!("{path}.{inner}")
                };
                rest.to_owned()
            }
            None => message,
        };
        // A missing key is reported at its parent; name the key itself.
        if let Some(key) = message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            path = if path.is_empty() {
                key.to_owned()
            } else {
                format!("{path}.{key}")
            };
        }
        ConfigIssue { path, message }
    })
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    version: u32,
    sources: Vec<ApiRecord>,
}

#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(data_dir: &Path) -> Store {
        Store {
            path: data_dir.join("admin").join("sources.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored sources; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<ApiRecord>, StoreError> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        };
        let file: StoreFile = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.version != VERSION {
            return Err(corrupt(format!(
                "version {} is not one this siemgate reads ({VERSION})",
                file.version
            )));
        }
        let mut ids = std::collections::HashSet::new();
        for r in &file.sources {
            if r.id().is_empty() {
                return Err(corrupt("a source has no id".to_owned()));
            }
            if !ids.insert(r.id().to_owned()) {
                return Err(corrupt(format!("source {:?} is stored twice", r.id())));
            }
        }
        Ok(file.sources)
    }

    /// Replaces the file with `records`. Blocking: call it off the async runtime.
    pub fn save(&self, records: Vec<ApiRecord>) -> Result<(), StoreError> {
        let err = |source| StoreError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let body = serde_json::to_vec_pretty(&StoreFile {
            version: VERSION,
            sources: records,
        })
        .map_err(|e| err(std::io::Error::other(e)))?;
        let tmp = self.path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).map_err(err)?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// API bodies get the config file's error rules: the key path down into the auth table,
    /// the expected type, never the value.
    #[test]
    fn parse_errors_name_the_key_and_not_the_value() {
        let cases = [
            (
                serde_json::json!({"id": "a", "auth": {"scheme": "token", "secrets": "s3cr3t-value"}, "sinks": ["out"]}),
                "auth.secrets",
                "expected a sequence",
            ),
            (
                serde_json::json!({"id": "a", "auth": {"scheme": "s3cr3t-value"}, "sinks": ["out"]}),
                "auth.scheme",
                "unknown variant",
            ),
            (
                serde_json::json!({"id": "a", "auth": {"scheme": "basic", "credentials": [{"username": "u"}]}, "sinks": ["out"]}),
                "auth.credentials[0].password",
                "missing field",
            ),
        ];
        for (v, path, message) in cases {
            let issue = parse_value::<SourceConfig>(&v).unwrap_err();
            assert_eq!(issue.path, path, "{issue}");
            assert!(issue.message.contains(message), "{issue}");
            assert!(!issue.to_string().contains("s3cr3t"), "{issue}");
        }
    }

    fn record(id: &str) -> ApiRecord {
        ApiRecord {
            definition: serde_json::json!({"id": id, "auth": {"scheme": "token", "secret": "s3cr3t-value"}, "sinks": ["out"]}),
            created_at: 1,
            updated_at: 2,
            grace: None,
        }
    }

    #[test]
    fn saves_and_loads_back_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        store.save(vec![record("a"), record("b")]).unwrap();
        let back = store.load().unwrap();
        assert_eq!(
            back.iter().map(ApiRecord::id).collect::<Vec<_>>(),
            ["a", "b"]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!store.path().with_extension("json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_an_error_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        std::fs::write(store.path(), b"{\"version\":1,\"sources\":[{\"defin").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("sources.json"), "{err}");
        assert!(err.contains("corrupt"), "{err}");
        assert_eq!(
            std::fs::read(store.path()).unwrap(),
            b"{\"version\":1,\"sources\":[{\"defin"
        );
        store.save(vec![record("a"), record("a")]).unwrap();
        assert!(store.load().unwrap_err().to_string().contains("twice"));
    }
}
