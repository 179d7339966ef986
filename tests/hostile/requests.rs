//! Hostile-input tests: requests (see tests/hostile.rs).
