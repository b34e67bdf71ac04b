#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pilot_discovery::fuzzing::xds_stream(data);
});
