#![no_main]
//! See `usage_tracker_fuzz::ecs_document` (fuzz/src/lib.rs) for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| usage_tracker_fuzz::ecs_document(data));
