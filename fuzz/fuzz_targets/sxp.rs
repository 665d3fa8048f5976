#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| domfs_fuzz::sxp_parse(data));
