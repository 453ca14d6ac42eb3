//! Fuzz target `listings_csv`: see `channeld::fuzz::listings_csv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| channeld::fuzz::listings_csv(data));
