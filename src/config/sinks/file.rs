//! `type = "file"`: NDJSON lines in a local file with size rotation and an fsync policy, for a
//! log shipper to pick up. Its keys, its runtime settings and their validation.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::super::{ConfigDuration, Issues};
use super::{
    BatchConfig, EventEncoding, QueueConfig, SinkCommon, SinkFilterConfig, SinkKind, SinkKindConfig,
};

/// File sink defaults.
pub const DEFAULT_FILE_ROTATE_BYTES: u64 = 100 * 1024 * 1024;
pub const DEFAULT_FILE_KEEP_FILES: usize = 5;
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    pub id: String,
    /// What each event is written as: `siemgate` (the normalized Event) or `ocsf` (one OCSF
    /// class object, valid against OCSF 1.1.0 and 1.8.0).
    #[serde(default)]
    pub encoding: EventEncoding,
    /// With `encoding = "ocsf"`: the OCSF version written in `metadata.version`, "1.1.0"
    /// (default; what Amazon Security Lake validates against) or "1.8.0".
    pub ocsf_version: Option<String>,
    pub path: PathBuf,
    #[serde(default)]
    pub fsync: FsyncPolicy,
    #[serde(default = "default_fsync_interval")]
    pub fsync_interval: ConfigDuration,
    #[serde(default = "default_file_rotate_bytes")]
    pub rotate_bytes: u64,
    #[serde(default = "default_file_keep_files")]
    pub keep_files: usize,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub batch: BatchConfig,
    #[serde(default)]
    pub filter: SinkFilterConfig,
    /// NDJSON file for events the destination refuses for good, with the reason and time.
    pub dead_letter_path: Option<PathBuf>,
    /// Give up retrying a batch after this long and dead-letter it; absent: retry forever.
    pub max_retry_duration: Option<ConfigDuration>,
}

/// When a file sink calls fsync.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every batch, before the batch counts as delivered.
    Always,
    /// At most once per `fsync_interval`; a crash may lose the last interval.
    #[default]
    Interval,
    /// Leave it to the operating system.
    Never,
}

fn default_fsync_interval() -> ConfigDuration {
    ConfigDuration(DEFAULT_FSYNC_INTERVAL)
}
fn default_file_rotate_bytes() -> u64 {
    DEFAULT_FILE_ROTATE_BYTES
}
fn default_file_keep_files() -> usize {
    DEFAULT_FILE_KEEP_FILES
}

#[derive(Debug, Clone)]
pub struct FileSettings {
    pub path: PathBuf,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
    pub rotate_bytes: u64,
    pub keep_files: usize,
}

impl SinkKindConfig for FileSinkConfig {
    fn type_name(&self) -> &'static str {
        "file"
    }

    fn common(&self) -> SinkCommon<'_> {
        common_keys!(self)
    }

    fn validate(&self, path: &str, issues: &mut Issues) -> Option<SinkKind> {
        let f = self;
        if f.rotate_bytes == 0 {
            issues.push(format!("{path}.rotate_bytes"), "must be greater than 0");
        }
        if f.fsync == FsyncPolicy::Interval && f.fsync_interval.0.is_zero() {
            issues.push(format!("{path}.fsync_interval"), "must be greater than 0");
        }
        if f.path.is_dir() {
            issues.push(
                format!("{path}.path"),
                format!("{} is a directory", f.path.display()),
            );
        }
        Some(SinkKind::File(FileSettings {
            path: f.path.clone(),
            fsync: f.fsync,
            fsync_interval: f.fsync_interval.0,
            rotate_bytes: f.rotate_bytes,
            keep_files: f.keep_files,
        }))
    }
}
