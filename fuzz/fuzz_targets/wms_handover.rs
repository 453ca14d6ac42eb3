//! Fuzz target `wms_handover`: see `channeld::fuzz::wms_handover`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| channeld::fuzz::wms_handover(data));
