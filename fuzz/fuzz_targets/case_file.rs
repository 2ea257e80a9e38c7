//! Golden case files (`recast test`): any text runs its cases against the
//! embedded default or gets a reason with its line, never a panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recast::Config;
use recast::golden::{Report, run_text};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::load(None, Vec::new()).expect("the embedded default"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // No `transforms` or `schemas` file exists under this directory: the
    // target stays off the file system.
    let path = Path::new("/nonexistent/recast-fuzz/cases.toml");
    let _ = run_text(config(), path, text, &mut Report::default());
});
