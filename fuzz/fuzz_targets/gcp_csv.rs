#![no_main]
//! See `usage_tracker_fuzz::gcp_csv` (fuzz/src/lib.rs) for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| usage_tracker_fuzz::gcp_csv(data));
