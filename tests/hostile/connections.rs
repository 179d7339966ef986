//! Hostile-input tests: connections (see tests/hostile.rs).
