//! `Severity`: the normalized levels (with `Unknown` for a vendor that says nothing), their
//! OCSF `severity_id`, the vendor words that map onto them, and how filters treat `Unknown`.

use serde::{Deserialize, Serialize};

/// Normalized severity, ordered from least to most severe so that filters can compare.
/// `Unknown` (OCSF 0) is what the vendor did not say; it sorts first but is no level: see
/// [`Severity::passes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Unknown,
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// OCSF `severity_id`: 0 Unknown, 1 Informational .. 5 Critical.
    pub fn ocsf_id(self) -> u8 {
        match self {
            Severity::Unknown => 0,
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }

    /// Whether an event of this severity passes a `min_severity` filter. An unknown severity
    /// always passes: the vendor did not say how bad it is, and an analyst must see it rather
    /// than have a filter drop it without anyone knowing.
    pub fn passes(self, min: Severity) -> bool {
        self == Severity::Unknown || self >= min
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
            ("unknown", Severity::Unknown),
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
        assert_eq!(Severity::Unknown.ocsf_id(), 0);
        assert_eq!(Severity::Unknown.as_str(), "unknown");
    }

    #[test]
    fn unknown_passes_every_minimum_and_levels_compare() {
        for min in [
            Severity::Informational,
            Severity::Medium,
            Severity::Critical,
        ] {
            assert!(Severity::Unknown.passes(min), "{min:?}");
        }
        assert!(!Severity::Low.passes(Severity::Medium));
        assert!(Severity::High.passes(Severity::Medium));
    }
}
