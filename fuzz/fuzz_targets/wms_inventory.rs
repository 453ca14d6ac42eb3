//! Fuzz target `wms_inventory`: see `channeld::fuzz::wms_inventory`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| channeld::fuzz::wms_inventory(data));
