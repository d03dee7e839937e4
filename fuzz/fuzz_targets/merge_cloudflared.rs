//! The cloudflared merge on any text: an error or a merged text, never a panic; a merged
//! config merges again to itself with nothing to do (idempotence).
#![no_main]

#[path = "common.rs"]
mod common;

use std::path::Path;

use entraform::render::merge::merge_cloudflared_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let desired = common::blueprint();
    let path = Path::new("config.yml");
    for force in [false, true] {
        let Ok(merged) = merge_cloudflared_text(text, path, desired, force) else {
            continue;
        };
        let again = merge_cloudflared_text(&merged.text, path, desired, false)
            .expect("a merged config merges again");
        assert_eq!(again.text, merged.text, "the second merge changed the text");
        assert!(
            again.actions.is_empty(),
            "the second merge did something: {:?}",
            again.actions
        );
    }
});
