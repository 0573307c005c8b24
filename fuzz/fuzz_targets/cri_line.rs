#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = tailtrace::fuzzing::cri_line(data) {
        panic!("{e}");
    }
});
