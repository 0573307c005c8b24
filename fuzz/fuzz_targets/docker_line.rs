#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = tailtrace::fuzzing::docker_line(data) {
        panic!("{e}");
    }
});
