//! Fuzz target `order_webhook`: see `channeld::fuzz::order_webhook`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| channeld::fuzz::order_webhook(data));
