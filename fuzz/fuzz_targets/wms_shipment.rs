//! Fuzz target `wms_shipment`: see `channeld::fuzz::wms_shipment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| channeld::fuzz::wms_shipment(data));
