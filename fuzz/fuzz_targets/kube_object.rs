#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pilot_discovery::fuzzing::kube_object(data);
});
