//! The customers.yaml merge on any text: an error or a merged text, never a panic; a merged
//! text merges again to itself with nothing to do (idempotence), and keeps parsing as YAML.
#![no_main]

#[path = "common.rs"]
mod common;

use std::path::Path;

use entraform::render::merge::merge_customers_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let desired = common::blueprint();
    let path = Path::new("customers.yaml");
    for (client_id, force) in [(Some(common::CLIENT_ID), false), (None, true)] {
        let Ok(merged) = merge_customers_text(text, path, desired, client_id, force) else {
            continue;
        };
        serde_yaml::from_str::<serde_yaml::Value>(&merged.text)
            .expect("a merged customers.yaml parses");
        let again = merge_customers_text(&merged.text, path, desired, client_id, false)
            .expect("a merged customers.yaml merges again");
        assert_eq!(again.text, merged.text, "the second merge changed the text");
        assert!(
            again.actions.is_empty(),
            "the second merge did something: {:?}",
            again.actions
        );
    }
});
