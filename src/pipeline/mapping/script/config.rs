//! The `[scripts]` section: the limits every Rhai transform runs under.

use std::num::{NonZeroU64, NonZeroUsize};

use serde::{Deserialize, Serialize};

/// The limits every Rhai transform runs under, per record. A record whose
/// script exceeds one is rejected to the dead-letter topic, naming it.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
// The field names are the configuration keys users write.
#[allow(clippy::struct_field_names)]
pub struct ScriptsConfig {
    /// Operations (roughly: expressions evaluated) per call.
    #[serde(default = "max_operations")]
    pub max_operations: NonZeroU64,
    /// Longest string a script may build, in bytes.
    #[serde(default = "max_string_bytes")]
    pub max_string_bytes: NonZeroUsize,
    /// Most elements in an array a script may build.
    #[serde(default = "max_collection_len")]
    pub max_array_len: NonZeroUsize,
    /// Most entries in a map a script may build with functions and
    /// operators (`+=`, `mixin`, literals). Rhai does not check a map
    /// growing one `m[key] = value` at a time; `max_operations` bounds that.
    #[serde(default = "max_collection_len")]
    pub max_map_len: NonZeroUsize,
    /// Deepest chain of function calls (recursion).
    #[serde(default = "max_call_depth")]
    pub max_call_depth: NonZeroUsize,
    /// Deepest nesting of expressions, checked when scripts are compiled.
    #[serde(default = "max_expr_depth")]
    pub max_expr_depth: NonZeroUsize,
}

impl Default for ScriptsConfig {
    fn default() -> Self {
        Self {
            max_operations: max_operations(),
            max_string_bytes: max_string_bytes(),
            max_array_len: max_collection_len(),
            max_map_len: max_collection_len(),
            max_call_depth: max_call_depth(),
            max_expr_depth: max_expr_depth(),
        }
    }
}

fn max_operations() -> NonZeroU64 {
    NonZeroU64::new(100_000).expect("non-zero")
}

fn max_string_bytes() -> NonZeroUsize {
    NonZeroUsize::new(1024 * 1024).expect("non-zero")
}

fn max_collection_len() -> NonZeroUsize {
    NonZeroUsize::new(10_000).expect("non-zero")
}

fn max_call_depth() -> NonZeroUsize {
    NonZeroUsize::new(32).expect("non-zero")
}

fn max_expr_depth() -> NonZeroUsize {
    NonZeroUsize::new(64).expect("non-zero")
}
