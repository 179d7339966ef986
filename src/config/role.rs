//! What one `siemgate serve` process does in a cluster (`--role`): intake and delivery
//! together (`all`, the default), only intake (`intake`: the hooks listener, producing each
//! sink's events to its Kafka topic), or only delivery (`deliver`: each sink's consumer group
//! and worker, no hooks listener). A split role needs every sink's queue on Kafka, since only
//! Kafka carries events from one process to another; [`check`] says which sink has not.

use std::fmt;
use std::str::FromStr;

use super::{ConfigIssue, Settings};

/// A process's share of the work (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Intake and delivery in one process; any queue.
    #[default]
    All,
    /// The hooks listener; Kafka-queued sinks only produce (no consumer, no sink worker).
    Intake,
    /// No hooks listener (admin, metrics and health still serve); Kafka-queued sinks consume
    /// and deliver, and produce only what a dead-letter replay puts back.
    Deliver,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Intake => "intake",
            Role::Deliver => "deliver",
        }
    }

    /// Whether this process listens for webhooks and produces their events.
    pub fn intakes(self) -> bool {
        matches!(self, Role::All | Role::Intake)
    }

    /// Whether this process runs the sinks' workers (and their consumers).
    pub fn delivers(self) -> bool {
        matches!(self, Role::All | Role::Deliver)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--role` was none of `all`, `intake`, `deliver`.
#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: expected all, intake or deliver")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        match s {
            "all" => Ok(Role::All),
            "intake" => Ok(Role::Intake),
            "deliver" => Ok(Role::Deliver),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// The problems of running `settings` in `settings.role`: in a split role, each sink whose
/// queue is not on Kafka (its events could never reach another process), named with its kind
/// of queue.
pub fn check(settings: &Settings) -> Vec<ConfigIssue> {
    let role = settings.role;
    if role == Role::All {
        return Vec::new();
    }
    settings
        .sinks
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kafka.is_none())
        .map(|(i, s)| {
            let kind = if s.disk.is_some() { "disk" } else { "memory" };
            ConfigIssue {
                path: format!("sinks[{i}].queue"),
                message: format!(
                    "--role {role} needs every sink's queue to be kafka; sink {:?} has a {kind} queue (set [sinks.queue] type = \"kafka\", or run it with --role all)",
                    s.id
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn roles_parse_and_say_what_they_run() {
        assert_eq!("intake".parse::<Role>().unwrap(), Role::Intake);
        assert_eq!("deliver".parse::<Role>().unwrap(), Role::Deliver);
        assert_eq!("all".parse::<Role>().unwrap(), Role::All);
        assert!("both".parse::<Role>().is_err());
        assert!(Role::Intake.intakes() && !Role::Intake.delivers());
        assert!(!Role::Deliver.intakes() && Role::Deliver.delivers());
        assert!(Role::All.intakes() && Role::All.delivers());
    }

    fn settings(queue: &str) -> Settings {
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:0"
plaintext = true
data_dir = "/tmp"
[[sinks]]
id = "splunk"
type = "file"
path = "/tmp/out.ndjson"
{queue}
[[sources]]
id = "s"
vendor = "generic"
sinks = ["splunk"]
auth = {{ scheme = "token", secret = "t" }}
"#
        );
        super::super::validate(super::super::parse(&text).unwrap()).unwrap()
    }

    #[test]
    fn a_split_role_names_each_sink_whose_queue_is_not_kafka() {
        let mut s = settings("[sinks.queue]\ntype = \"disk\"");
        assert!(check(&s).is_empty(), "role all takes any queue");
        s.role = Role::Intake;
        let issues = check(&s);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].path, "sinks[0].queue");
        assert!(
            issues[0].message.contains("--role intake")
                && issues[0].message.contains("\"splunk\" has a disk queue"),
            "{}",
            issues[0].message
        );
        let mut s = settings("");
        s.role = Role::Deliver;
        assert!(check(&s)[0].message.contains("has a memory queue"));
        let mut s = settings("[sinks.queue]\ntype = \"kafka\"\nbrokers = [\"127.0.0.1:9092\"]");
        s.role = Role::Deliver;
        assert!(check(&s).is_empty());
    }
}
