//! `Severity`: the five normalized levels, their OCSF `severity_id`, and the vendor words that
//! map onto them.

use serde::{Deserialize, Serialize};

/// Normalized severity, ordered from least to most severe so that filters can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// OCSF `severity_id`: 1 Informational .. 5 Critical.
    pub fn ocsf_id(self) -> u8 {
        match self {
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }

    /// Maps a common vendor word (any case) to a level; `None` when the word is not known.
    pub fn from_word(word: &str) -> Option<Severity> {
        const WORDS: &[(&str, Severity)] = &[
            ("informational", Severity::Informational),
            ("information", Severity::Informational),
            ("info", Severity::Informational),
            ("debug", Severity::Informational),
            ("low", Severity::Low),
            ("warning", Severity::Low),
            ("medium", Severity::Medium),
            ("moderate", Severity::Medium),
            ("error", Severity::Medium),
            ("high", Severity::High),
            ("critical", Severity::Critical),
            ("fatal", Severity::Critical),
        ];
        let word = word.trim();
        WORDS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word))
            .map(|&(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_map_case_insensitively_and_order_holds() {
        assert_eq!(Severity::from_word("HIGH"), Some(Severity::High));
        assert_eq!(Severity::from_word(" info "), Some(Severity::Informational));
        assert_eq!(Severity::from_word("P1"), None);
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Informational);
        assert_eq!(Severity::Critical.ocsf_id(), 5);
    }
}
