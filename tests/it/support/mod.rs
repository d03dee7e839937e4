//! What more than one module of the test binary uses, and the one copy of the constants the
//! tests share.

pub mod bin;
pub mod common;
pub mod fixture;
pub mod harness;
pub mod reliability;
pub mod trips;
pub mod world;

/// Microsoft Graph's appId (the resource of `User.Read`).
pub const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
/// The id of Graph's delegated `User.Read` scope.
pub const USER_READ: &str = "e1fe6dd8-ba31-4d61-89e7-88639da4683d";
/// The verified domain of the emulator's tenant.
pub const DOMAIN: &str = "axelabs.ai";
/// The host the repository's manifests serve on.
pub const HOST: &str = "axe.axelabs.ai";
/// The customer tenant of the emulator (and of the repository's manifests).
pub const TENANT: &str = "122fb574-7efa-476a-95b6-bee81bce2cce";
/// A second customer tenant.
pub const TENANT_B: &str = "5b0e9c1a-7d3f-4e2a-9c8b-1f2e3d4c5b6a";
/// The appIds the seeds and manifests give frame, hive and blueprint.
pub const FRAME_APP_ID: &str = "6d2f7a30-51c4-4b8e-9a3e-8f6b1c2d4e51";
pub const HIVE_APP_ID: &str = "7a1c2e3f-4b5d-4e6f-8a9b-0c1d2e3f4a5b";
pub const BLUEPRINT_APP_ID: &str = "482598f7-540c-462c-9dfd-b957651eb804";
/// The scope the operator asks tokens for.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// hive: its manifest (relative to a harness's directory), uniqueName, identifier URI and
/// vault path.
pub const HIVE: &str = "manifests/hive.yaml";
pub const HIVE_UNIQUE: &str = "axe-hive-mcp";
pub const HIVE_URI: &str = "https://axe.axelabs.ai/hive/mcp";
pub const HIVE_VAULT_PATH: &str = "hive/axe/mcp-client-secret";
/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_entraform");
/// frame made by hand, as a seed file.
pub const FRAME_SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/frame.seed.json"
);

/// A path in the repository.
pub fn repo(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Copy the directory `from` to `to`, recursively.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every regular file below `dir` (recursively), sorted; none when `dir` is missing.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&path)),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    out.sort();
    out
}

/// The seed of [`FRAME_SEED`].
pub fn frame_seed() -> serde_json::Value {
    let text = std::fs::read_to_string(FRAME_SEED).unwrap();
    serde_json::from_str(&text).unwrap()
}
