//! Manifest parsing: any bytes as a service manifest (with the example defaults), or, after a
//! first line `#defaults`, as the defaults file (with the example blueprint manifest). Loading
//! must return a located error or a desired state, never panic; a desired state must render
//! (a template filter refusing a value lowering accepted is a bug).
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = common::scratch().join("manifest");
    std::fs::create_dir_all(&dir).unwrap();
    let (defaults, service): (&[u8], &[u8]) = match data.strip_prefix(b"#defaults\n") {
        Some(rest) => (rest, common::BLUEPRINT.as_bytes()),
        None => (common::DEFAULTS.as_bytes(), data),
    };
    std::fs::write(dir.join("defaults.yaml"), defaults).unwrap();
    let path = dir.join("blueprint.yaml");
    std::fs::write(&path, service).unwrap();
    match entraform::manifest::load_service(&path, None) {
        Ok(desired) => {
            // Everything derived from a valid manifest renders: lowering refuses what the
            // templates' filters would (control characters, issue 10).
            for client_id in [Some(common::CLIENT_ID), None] {
                if let Err(e) = entraform::render::render_all(&desired, client_id, None) {
                    panic!("a manifest that loads does not render: {e}");
                }
            }
        }
        Err(e) => {
            // Every error has a message; building it must not panic either.
            assert!(!e.to_string().is_empty());
            let _ = e.hint();
        }
    }
});
