//! Feature flags: behaviour that is new and risky ships switched off, and an operator turns it
//! on per process with `FEATURE_FLAGS=<name>,<name>` (no rebuild, and off again by a restart).
//!
//! Each binary declares the flags it knows, with what they do; an unknown name is a
//! configuration error, so a typo cannot silently leave a flag off. The flags a process runs
//! with are logged at start and exported as `feature_flag_enabled{flag}` (1 or 0).
//!
//! This module knows no flag: what a flag changes is decided where the behaviour lives.

use std::collections::BTreeSet;

/// A flag a binary understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureFlag {
    pub name: &'static str,
    /// What turning it on changes, for the configuration error and the docs.
    pub description: &'static str,
}

/// The flags turned on for this process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureFlags {
    known: &'static [FeatureFlag],
    enabled: BTreeSet<&'static str>,
}

impl FeatureFlags {
    /// Parses a comma-separated list of names (blanks ignored) against `known`.
    pub fn parse(raw: &str, known: &'static [FeatureFlag]) -> Result<Self, String> {
        let mut enabled = BTreeSet::new();
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match known.iter().find(|flag| flag.name == name) {
                Some(flag) => {
                    enabled.insert(flag.name);
                }
                None => {
                    let names: Vec<&str> = known.iter().map(|f| f.name).collect();
                    return Err(format!(
                        "unknown feature flag {name:?}; this binary knows: {}",
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ));
                }
            }
        }
        Ok(Self { known, enabled })
    }

    pub fn is_enabled(&self, name: &str) -> bool {
        self.enabled.contains(name)
    }

    /// Logs the flags that are on and sets `feature_flag_enabled` for every known flag.
    pub fn report(&self) {
        for flag in self.known {
            let on = self.is_enabled(flag.name);
            metrics::gauge!("feature_flag_enabled", "flag" => flag.name)
                .set(f64::from(u8::from(on)));
        }
        let enabled: Vec<&str> = self.enabled.iter().copied().collect();
        tracing::info!(enabled = ?enabled, "feature flags");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[FeatureFlag] = &[
        FeatureFlag {
            name: "new-thing",
            description: "does the new thing",
        },
        FeatureFlag {
            name: "other",
            description: "another",
        },
    ];

    #[test]
    fn only_the_listed_flags_are_on() {
        let flags = FeatureFlags::parse(" new-thing ,, ", KNOWN).unwrap();
        assert!(flags.is_enabled("new-thing"));
        assert!(!flags.is_enabled("other"));
        assert!(!FeatureFlags::parse("", KNOWN)
            .unwrap()
            .is_enabled("new-thing"));
    }

    #[test]
    fn an_unknown_flag_is_an_error_that_lists_the_known_ones() {
        let err = FeatureFlags::parse("new-thing,new_thing", KNOWN).unwrap_err();
        assert!(err.contains("\"new_thing\""), "{err}");
        assert!(err.contains("new-thing, other"), "{err}");
    }
}
