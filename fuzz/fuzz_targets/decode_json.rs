//! Legacy JSON decode: any bytes get an object or a reason, never a panic;
//! an object that decodes, written out again, decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recast::Decoder;

fuzz_target!(|data: &[u8]| {
    let decoder = Decoder::new(1 << 20, 64);
    if let Ok(object) = decoder.decode(Some(data)) {
        let text = serde_json::to_vec(&object).expect("an object is JSON");
        let again = decoder
            .decode(Some(&text))
            .unwrap_or_else(|e| panic!("{object:?} written out does not decode: {e}"));
        assert_eq!(again, object);
    }
});
