//! Fuzz target `wms_seller_cancel`: see `channeld::fuzz::wms_seller_cancel`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| channeld::fuzz::wms_seller_cancel(data));
