//! Hostile-input tests: identity (see tests/hostile.rs).
