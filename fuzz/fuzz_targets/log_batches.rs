//! The log reader's record-batch parser and `read_committed` rule, on
//! arbitrary fetch data: committed records or a protocol error, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = recast::log_reader::committed_in(data);
});
