//! Configuration text: any text is a configuration or a list of problems
//! naming their lines, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recast::{Config, Origin};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Origin::File("/nonexistent/recast-fuzz/recast.toml".into());
    if let Ok(config) = Config::parse(text, origin, Vec::new()) {
        // What parses prints as an effective configuration.
        let _ = config.effective();
    }
});
