//! Vault backends, `store_verified` and the audit log, against real files, real child
//! processes (small shell scripts written into a temp dir) and — when one runs — a real Secret
//! Service (`scripts/test.sh` starts gnome-keyring in a private D-Bus session and sets
//! `ENTRAFORM_SECRET_SERVICE=1`).
//!
//! Every failure case checks that neither the error (message, hint, Debug) nor any file left
//! behind contains the secret or any 8-character fragment of it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use entraform::audit::{self, AuditAction, AuditOutcome, AuditRecord};
use entraform::secret::Secret;
use entraform::vault::redact::contains_fragment;
use entraform::vault::{
    CommandVault, DotenvVault, FileVault, KeyringStore, KeyringVault, Vault, VaultConfig,
    VaultError, VaultStage, open, store_verified,
};
use rand::Rng;
use rand::distr::Alphanumeric;

const PATH: &str = "blueprint/axe/mcp-client-secret";
const ENV: &str = "AZURE_BLUEPRINT_MCP_CLIENT_SECRET";

/// A fresh value shaped like an Entra client secret (40 characters, `~` and `.` inside).
fn new_secret() -> Secret {
    let mut rng = rand::rng();
    let mut part = |n: usize| -> String {
        (&mut rng)
            .sample_iter(Alphanumeric)
            .take(n)
            .map(char::from)
            .collect()
    };
    let value = format!("{}8Q~{}.{}", part(3), part(27), part(6));
    assert_eq!(value.len(), 40);
    Secret::new(value)
}

/// A different valid secret of the same length.
fn other_secret_like(s: &Secret) -> Secret {
    loop {
        let o = new_secret();
        if o.len() == s.len() && !o.same_as(s) {
            return o;
        }
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Files under `dir` (except `allowed`) holding the secret or a fragment of it.
fn leaks_in_files(dir: &Path, secret: &Secret, allowed: &[PathBuf]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| !allowed.contains(p))
        .filter(|p| contains_fragment(&fs::read(p).unwrap(), secret))
        .collect()
}

/// No trace of the secret in anything an error can show.
fn assert_clean(err: &VaultError, secret: &Secret) {
    let texts = [
        err.to_string(),
        err.hint().unwrap_or_default(),
        format!("{err:?}"),
        entraform::error::Error::from(clone_text(err)).to_string(),
    ];
    for text in texts {
        assert!(
            !contains_fragment(text.as_bytes(), secret),
            "a fragment of the secret is in the error text"
        );
    }
}

fn clone_text(err: &VaultError) -> VaultError {
    VaultError::Backend {
        backend: "x".into(),
        message: err.to_string(),
        hint: err.hint(),
    }
}

fn no_temp_files(dir: &Path) {
    let temps: Vec<_> = files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "temp files left: {temps:?}");
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\nset -eu\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    format!("./{name}")
}

/// push: store stdin under `store/<path>`; get: print it (no newline).
fn storing_scripts(dir: &Path) -> (String, String) {
    let push = script(
        dir,
        "push.sh",
        r#"mkdir -p "store/$(dirname "$1")"; cat > "store/$1""#,
    );
    let get = script(
        dir,
        "get.sh",
        r#"if [ -f "store/$1" ]; then cat "store/$1"; fi"#,
    );
    (push, get)
}

fn command_vault(dir: &Path, push: &str, get: Option<&str>) -> CommandVault {
    CommandVault::new(
        vec![push.into(), "{path}".into()],
        get.map(|g| vec![g.into(), "{path}".into()]),
        dir,
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// file

#[test]
fn file_round_trip_keeps_other_entries_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = VaultConfig::File {
        path: ".entraform/sandbox/vault.json".into(),
    };
    let vault = open(&cfg, dir.path(), ENV).unwrap();
    let (a, b) = (new_secret(), new_secret());
    let report = store_verified(vault.as_ref(), PATH, &a).unwrap();
    assert!(report.verified);
    assert_eq!(report.length, 40);
    assert_eq!(report.hint, a.hint());
    assert_eq!(report.path, PATH);
    store_verified(vault.as_ref(), "hive/axe/mcp-client-secret", &b).unwrap();

    let file = dir.path().join(".entraform/sandbox/vault.json");
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    let json: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(json.as_object().unwrap().len(), 2);
    assert!(vault.get(PATH).unwrap().unwrap().same_as(&a));
    assert!(
        vault
            .get("hive/axe/mcp-client-secret")
            .unwrap()
            .unwrap()
            .same_as(&b)
    );
    assert!(vault.get("nope").unwrap().is_none());

    // replace one entry, the other stays
    let a2 = new_secret();
    store_verified(vault.as_ref(), PATH, &a2).unwrap();
    assert!(vault.get(PATH).unwrap().unwrap().same_as(&a2));
    assert!(
        vault
            .get("hive/axe/mcp-client-secret")
            .unwrap()
            .unwrap()
            .same_as(&b)
    );
    assert!(
        leaks_in_files(dir.path(), &a, &[]).is_empty(),
        "the replaced value is gone"
    );
    no_temp_files(dir.path());
}

#[test]
fn file_store_that_is_not_json_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.json");
    let old = new_secret();
    // A top-level string: serde_json's own message would quote it.
    let original = format!("\"{}\"\n", old.expose());
    fs::write(&file, &original).unwrap();
    let vault = FileVault::new(file.clone());
    let secret = new_secret();
    let err = store_verified(&vault, PATH, &secret).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Write);
    assert!(err.to_string().contains("not a JSON object"), "{err}");
    assert_clean(&err, &secret);
    assert_clean(&err, &old);
    assert_eq!(fs::read_to_string(&file).unwrap(), original);
    no_temp_files(dir.path());
    let err = vault.get(PATH).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Read);
    assert_clean(&err, &old);
}

#[test]
fn refuses_a_value_not_shaped_like_a_secret_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let vault = FileVault::new(dir.path().join("vault.json"));
    let glued = Secret::new(format!("{}\nWARNING: deprecated", new_secret().expose()));
    let err = store_verified(&vault, PATH, &glued).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Check);
    assert!(err.to_string().contains("whitespace"), "{err}");
    assert!(files_under(dir.path()).is_empty(), "nothing written");
}

// ---------------------------------------------------------------------------------------------
// dotenv

#[test]
fn dotenv_upsert_keeps_every_other_line_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    let old = new_secret();
    let original = format!(
        "# blueprint runtime env\r\n\
         DATABASE_URL=postgresql://bp@postgres/bp\n\
         \n\
         export {ENV}={old}   # rotated by hand\n\
         OTHER='keep me'\n\
         {ENV}=stale-duplicate\n\
         # trailing comment, no final newline",
        old = old.expose()
    );
    fs::write(&env, &original).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&env, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let vault = open(
        &VaultConfig::Dotenv {
            path: ".env".into(),
        },
        dir.path(),
        ENV,
    )
    .unwrap();
    let secret = new_secret();
    let report = store_verified(vault.as_ref(), PATH, &secret).unwrap();
    assert!(report.verified);
    let expected = format!(
        "# blueprint runtime env\r\n\
         DATABASE_URL=postgresql://bp@postgres/bp\n\
         \n\
         export {ENV}={new}\n\
         OTHER='keep me'\n\
         # trailing comment, no final newline",
        new = secret.expose()
    );
    assert_eq!(fs::read_to_string(&env).unwrap(), expected);
    assert_eq!(mode(&env), 0o600);
    assert!(vault.get(PATH).unwrap().unwrap().same_as(&secret));
    assert!(leaks_in_files(dir.path(), &old, &[]).is_empty());
    no_temp_files(dir.path());
}

#[test]
fn dotenv_appends_to_a_file_without_the_key_and_creates_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("app.env");
    fs::write(&env, "A=1\n# note").unwrap();
    let vault = DotenvVault::new(env.clone(), ENV).unwrap();
    let secret = new_secret();
    store_verified(&vault, PATH, &secret).unwrap();
    assert_eq!(
        fs::read_to_string(&env).unwrap(),
        format!("A=1\n# note\n{ENV}={}\n", secret.expose())
    );

    let fresh = dir.path().join("fresh.env");
    let vault = DotenvVault::new(fresh.clone(), ENV).unwrap();
    assert!(vault.get(PATH).unwrap().is_none());
    store_verified(&vault, PATH, &secret).unwrap();
    assert_eq!(
        fs::read_to_string(&fresh).unwrap(),
        format!("{ENV}={}\n", secret.expose())
    );
    assert_eq!(mode(&fresh), 0o600);
    // idempotent: the same value again changes no byte
    store_verified(&vault, PATH, &secret).unwrap();
    assert_eq!(
        fs::read_to_string(&fresh).unwrap(),
        format!("{ENV}={}\n", secret.expose())
    );
}

#[test]
fn dotenv_quotes_only_a_leading_tilde() {
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    let vault = DotenvVault::new(env.clone(), ENV).unwrap();
    let tilde = Secret::new(format!("~{}", &new_secret().expose()[1..]));
    store_verified(&vault, PATH, &tilde).unwrap();
    assert_eq!(
        fs::read_to_string(&env).unwrap(),
        format!("{ENV}='{}'\n", tilde.expose())
    );
    assert!(vault.get(PATH).unwrap().unwrap().same_as(&tilde));
    // `~` and `.` inside need no quotes
    let plain = new_secret();
    store_verified(&vault, PATH, &plain).unwrap();
    assert_eq!(
        fs::read_to_string(&env).unwrap(),
        format!("{ENV}={}\n", plain.expose())
    );
}

#[test]
fn dotenv_failure_loses_nothing_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    // the directory does not exist: nothing may be created
    let vault = DotenvVault::new(dir.path().join("missing/.env"), ENV).unwrap();
    let secret = new_secret();
    let err = store_verified(&vault, PATH, &secret).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Write);
    assert_clean(&err, &secret);
    assert!(files_under(dir.path()).is_empty());

    // a value a .env line cannot hold: the file stays as it was
    let env = dir.path().join(".env");
    fs::write(&env, "A=1\n").unwrap();
    let vault = DotenvVault::new(env.clone(), ENV).unwrap();
    let bad = Secret::new(format!("{}'x", new_secret().expose()));
    let err = vault.put(PATH, &bad).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Write);
    assert_clean(&err, &bad);
    assert_eq!(fs::read_to_string(&env).unwrap(), "A=1\n");
    no_temp_files(dir.path());

    assert!(matches!(
        DotenvVault::new(env, "1BAD-NAME"),
        Err(VaultError::Config { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// command

#[test]
fn command_round_trip_secret_only_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let (push, get) = storing_scripts(dir.path());
    // the push script also records its argv and environment, to prove the secret is in neither
    let push_body = fs::read_to_string(dir.path().join("push.sh")).unwrap();
    fs::write(
        dir.path().join("push.sh"),
        push_body.replace(
            "set -eu\n",
            "set -eu\nenv > env.txt; printf '%s\\n' \"$@\" > argv.txt\n",
        ),
    )
    .unwrap();
    let vault = open(
        &VaultConfig::Command(entraform::vault::CommandConfig::new(
            vec![push, "{path}".into()],
            Some(vec![get, "{path}".into()]),
        )),
        dir.path(),
        ENV,
    )
    .unwrap();
    assert!(vault.describe().contains("push.sh"));
    let secret = new_secret();
    let report = store_verified(vault.as_ref(), PATH, &secret).unwrap();
    assert!(report.verified);
    let stored = dir.path().join("store").join(PATH);
    assert_eq!(
        fs::read(&stored).unwrap(),
        secret.expose().as_bytes(),
        "exact bytes, no newline"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("argv.txt")).unwrap(),
        format!("{PATH}\n")
    );
    assert!(
        fs::read_to_string(dir.path().join("env.txt"))
            .unwrap()
            .contains("PATH=")
    );
    assert!(leaks_in_files(dir.path(), &secret, &[stored]).is_empty());
    assert!(
        vault.get("absent/entry").unwrap().is_none(),
        "exit 0, no output = absent"
    );
}

#[test]
fn command_path_is_one_argument_never_a_shell_word() {
    let dir = tempfile::tempdir().unwrap();
    let push = script(
        dir.path(),
        "argv.sh",
        r#"printf '%s\n' "$#" "$@" > argv.txt; cat > /dev/null"#,
    );
    let vault = CommandVault::new(
        vec![push, "{path}".into(), "--to={path}".into(), "-".into()],
        None,
        dir.path(),
    )
    .unwrap();
    let tricky = "svc/axe/x; touch pwned $(touch pwned2)";
    let report = store_verified(&vault, tricky, &new_secret()).unwrap();
    assert!(!report.verified, "no get command: nothing to read back");
    assert_eq!(
        fs::read_to_string(dir.path().join("argv.txt")).unwrap(),
        format!("3\n{tricky}\n--to={tricky}\n-\n")
    );
    assert!(!dir.path().join("pwned").exists() && !dir.path().join("pwned2").exists());
}

#[test]
fn command_get_trims_exactly_one_newline() {
    let dir = tempfile::tempdir().unwrap();
    let (push, _) = storing_scripts(dir.path());
    let get = script(dir.path(), "get-echo.sh", r#"cat "store/$1"; echo"#);
    let vault = command_vault(dir.path(), &push, Some(&get));
    let secret = new_secret();
    assert!(store_verified(&vault, PATH, &secret).unwrap().verified);

    let get2 = script(dir.path(), "get-echo2.sh", r#"cat "store/$1"; echo; echo"#);
    let vault = command_vault(dir.path(), &push, Some(&get2));
    let err = vault.get(PATH).unwrap_err();
    assert!(matches!(err, VaultError::ReadShape { .. }), "{err:?}");
    assert!(err.to_string().contains("whitespace"), "{err}");
    assert_clean(&err, &secret);
}

#[test]
fn command_push_that_fails_and_echoes_its_input_is_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let push = script(
        dir.path(),
        "push-fail.sh",
        r#"in=$(cat)
echo "error: could not store value $in for $1" >&2
echo "preview: $(printf '%s' "$in" | cut -c5-20)"
echo "hint: check your token" >&2
exit 3"#,
    );
    let vault = command_vault(dir.path(), &push, None);
    let secret = new_secret();
    let err = store_verified(&vault, PATH, &secret).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Write);
    let text = err.to_string();
    assert!(text.contains("exit status 3"), "{text}");
    assert!(
        text.contains("error: could not store value *** for blueprint/axe"),
        "{text}"
    );
    assert!(text.contains("preview: ***"), "{text}");
    assert!(text.contains("hint: check your token"), "{text}");
    assert!(err.hint().unwrap().contains("push command"));
    assert_clean(&err, &secret);
    assert!(leaks_in_files(dir.path(), &secret, &[]).is_empty());
}

#[test]
fn command_push_that_stores_something_else_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let secret = new_secret();
    let decoy = other_secret_like(&secret);
    let push = script(
        dir.path(),
        "push-other.sh",
        &format!(
            r#"cat > /dev/null; mkdir -p "store/$(dirname "$1")"; printf '%s' '{}' > "store/$1""#,
            decoy.expose()
        ),
    );
    let (_, get) = storing_scripts(dir.path());
    let vault = command_vault(dir.path(), &push, Some(&get));
    let err = store_verified(&vault, PATH, &secret).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Verify);
    assert!(matches!(err, VaultError::Mismatch { .. }));
    assert!(
        err.to_string()
            .contains("different value of the same length"),
        "{err}"
    );
    assert_clean(&err, &secret);
    assert_clean(&err, &decoy);
    assert!(leaks_in_files(dir.path(), &secret, &[]).is_empty());
}

#[test]
fn command_stderr_glued_into_the_vault_is_the_270_character_incident() {
    let dir = tempfile::tempdir().unwrap();
    // A push pipeline that lets a 230-character warning through with the secret, as
    // `az … 2>&1 | axe secret push` did.
    let push = script(
        dir.path(),
        "push-glue.sh",
        r#"mkdir -p "store/$(dirname "$1")"
{ cat; head -c 230 /dev/zero | tr '\0' 'W'; } > "store/$1""#,
    );
    let (_, get) = storing_scripts(dir.path());
    let vault = command_vault(dir.path(), &push, Some(&get));
    let secret = new_secret();
    let err = store_verified(&vault, PATH, &secret).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Verify);
    let text = err.to_string();
    assert!(text.contains("wrote 40 characters"), "{text}");
    assert!(text.contains("270 characters"), "{text}");
    assert!(text.contains("stderr"), "{text}");
    assert_clean(&err, &secret);

    // and a plain read of that entry says what is wrong with it
    let err = vault.get(PATH).unwrap_err();
    assert!(matches!(err, VaultError::ReadShape { .. }), "{err:?}");
    assert!(err.hint().unwrap().contains("2>&1"));
    assert_clean(&err, &secret);
}

#[test]
fn command_get_with_a_warning_on_stdout_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let (push, _) = storing_scripts(dir.path());
    let get = script(
        dir.path(),
        "get-warn.sh",
        r#"cat "store/$1"; echo; echo "WARNING: this CLI version is deprecated""#,
    );
    let vault = command_vault(dir.path(), &push, Some(&get));
    let secret = new_secret();
    let err = store_verified(&vault, PATH, &secret).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Verify);
    assert!(err.to_string().contains("whitespace"), "{err}");
    assert_clean(&err, &secret);
}

#[test]
fn command_push_with_noisy_stderr_that_succeeds_is_fine_and_silent() {
    let dir = tempfile::tempdir().unwrap();
    let push = script(
        dir.path(),
        "push-noisy.sh",
        r#"mkdir -p "store/$(dirname "$1")"; tee "store/$1" >&2; echo "stored" >&2"#,
    );
    let (_, get) = storing_scripts(dir.path());
    let vault = command_vault(dir.path(), &push, Some(&get));
    let secret = new_secret();
    let report = store_verified(&vault, PATH, &secret).unwrap();
    assert!(report.verified);
    let stored = dir.path().join("store").join(PATH);
    assert!(leaks_in_files(dir.path(), &secret, &[stored]).is_empty());
}

#[test]
fn command_get_that_fails_is_a_read_failure_not_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let (push, _) = storing_scripts(dir.path());
    // prints the value on stdout, then fails: stdout must not be shown
    let get = script(
        dir.path(),
        "get-fail.sh",
        r#"cat "store/$1"; echo "vault is locked" >&2; exit 2"#,
    );
    let vault = command_vault(dir.path(), &push, Some(&get));
    let secret = new_secret();
    let err = store_verified(&vault, PATH, &secret).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Read);
    assert!(matches!(err, VaultError::ReadFailed { .. }));
    let text = err.to_string();
    assert!(
        text.contains("exit status 2") && text.contains("vault is locked"),
        "{text}"
    );
    assert!(text.contains("40 bytes, not shown"), "{text}");
    assert_clean(&err, &secret);
}

#[test]
fn command_get_that_echoes_a_secret_on_stderr_is_redacted_without_knowing_it() {
    let dir = tempfile::tempdir().unwrap();
    let (push, _) = storing_scripts(dir.path());
    let get = script(
        dir.path(),
        "get-leak.sh",
        r#"echo "debug: value=$(cat "store/$1") tenant=7f0c5a35-5c2a-4d8e-9b8b-1b7c9f1c2a11" >&2; exit 1"#,
    );
    let vault = command_vault(dir.path(), &push, Some(&get));
    let secret = new_secret();
    vault.put(PATH, &secret).unwrap();
    let err = vault.get(PATH).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("debug: value=*** tenant=7f0c5a35-5c2a-4d8e-9b8b-1b7c9f1c2a11"),
        "{text}"
    );
    assert_clean(&err, &secret);
}

#[test]
fn command_timeout_and_missing_program() {
    let dir = tempfile::tempdir().unwrap();
    let push = script(dir.path(), "push-hang.sh", "exec sleep 20");
    let vault = command_vault(dir.path(), &push, None).with_timeout(Duration::from_millis(500));
    let secret = new_secret();
    let start = Instant::now();
    let err = store_verified(&vault, PATH, &secret).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(err.stage(), VaultStage::Write);
    assert!(err.to_string().contains("did not finish"), "{err}");

    let vault = command_vault(dir.path(), "entraform-no-such-vault-tool", None);
    let err = store_verified(&vault, PATH, &secret).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Write);
    assert!(err.hint().unwrap().contains("PATH"), "{:?}", err.hint());
    assert_clean(&err, &secret);
}

/// Whether process `pid` is gone (or a zombie waiting for its new parent to reap it).
fn gone(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: &str) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    // The push starts a grandchild that would outlive it, then hangs.
    let push = script(
        dir.path(),
        "push-spawns.sh",
        "sleep 30 & echo $! > grandchild.pid; cat >/dev/null; sleep 30",
    );
    let vault = command_vault(dir.path(), &push, None).with_timeout(Duration::from_millis(800));
    let secret = new_secret();
    let err = store_verified(&vault, PATH, &secret).unwrap_err();
    assert_eq!(err.stage(), VaultStage::Write);
    assert!(
        err.to_string().contains("every process it started"),
        "{err}"
    );
    let pid = fs::read_to_string(dir.path().join("grandchild.pid")).unwrap();
    assert!(
        wait_gone(pid.trim()),
        "the grandchild sleep {pid} still runs"
    );
    assert_clean(&err, &secret);
}

#[test]
fn output_that_never_ends_is_an_error_not_absent() {
    let dir = tempfile::tempdir().unwrap();
    // `get` exits 0 at once with no output, but leaves a process holding its stdout: what it
    // printed is not known to be all of it, so this must not read as "absent".
    let get = script(
        dir.path(),
        "get-leaves.sh",
        "sleep 30 & echo $! > grandchild.pid",
    );
    let push = script(dir.path(), "push.sh", "cat >/dev/null");
    let vault = command_vault(dir.path(), &push, Some(&get)).with_timeout(Duration::from_secs(20));
    let start = Instant::now();
    let err = vault.get(PATH).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(err.stage(), VaultStage::Read);
    assert!(!err.may_be_absent());
    assert!(err.to_string().contains("its output did not end"), "{err}");
    let pid = fs::read_to_string(dir.path().join("grandchild.pid")).unwrap();
    assert!(
        wait_gone(pid.trim()),
        "the grandchild sleep {pid} still runs"
    );
}

fn vault_with_rule(
    dir: &Path,
    get_body: &str,
    missing: Option<entraform::vault::MissingRule>,
) -> CommandVault {
    let push = script(dir, "push.sh", "cat >/dev/null");
    let get = script(dir, "get-rule.sh", get_body);
    let config = entraform::vault::CommandConfig {
        missing,
        ..entraform::vault::CommandConfig::new(
            vec![push, "{path}".into()],
            Some(vec![get, "{path}".into()]),
        )
    };
    CommandVault::from_config(&config, dir).unwrap()
}

#[test]
fn the_missing_entry_rule_decides_what_a_failing_get_means() {
    let dir = tempfile::tempdir().unwrap();
    let pass_like = entraform::vault::MissingRule {
        exit: vec![1],
        stderr: Some("is not in the password store".into()),
    };
    // pass's own message for a missing entry → absent
    let v = vault_with_rule(
        dir.path(),
        r#"echo "Error: $1 is not in the password store." >&2; exit 1"#,
        Some(pass_like.clone()),
    );
    assert!(v.get(PATH).unwrap().is_none());
    // the same exit code with another message (gpg cannot decrypt) → a failed read
    let v = vault_with_rule(
        dir.path(),
        r#"echo "gpg: decryption failed: No secret key" >&2; exit 1"#,
        Some(pass_like.clone()),
    );
    let err = v.get(PATH).unwrap_err();
    assert!(matches!(err, VaultError::ReadFailed { .. }), "{err:?}");
    assert!(!err.may_be_absent());
    assert!(
        err.hint()
            .unwrap()
            .contains("not the vault's missing-entry rule")
    );
    // another exit code with the message → a failed read
    let v = vault_with_rule(
        dir.path(),
        r#"echo "Error: $1 is not in the password store." >&2; exit 2"#,
        Some(pass_like),
    );
    assert!(v.get(PATH).is_err());
    // secret-tool's rule: exit 1 and no stderr at all
    let empty_stderr = entraform::vault::MissingRule {
        exit: vec![1],
        stderr: Some("^$".into()),
    };
    let v = vault_with_rule(dir.path(), "exit 1", Some(empty_stderr.clone()));
    assert!(v.get(PATH).unwrap().is_none());
    let v = vault_with_rule(
        dir.path(),
        "echo 'secret-tool: Cannot autolaunch D-Bus without X11' >&2; exit 1",
        Some(empty_stderr),
    );
    assert!(v.get(PATH).is_err());
    // no rule: unsure, which apply may take as absent and `secrets` may not
    let v = vault_with_rule(dir.path(), r#"echo "Not found." >&2; exit 1"#, None);
    let err = v.get(PATH).unwrap_err();
    assert!(err.may_be_absent(), "{err:?}");
    assert_eq!(err.stage(), VaultStage::Read);
    assert!(err.to_string().contains("Not found."), "{err}");
    // killed by a signal is never "absent", rule or not
    let v = vault_with_rule(
        dir.path(),
        "kill -9 $$",
        Some(entraform::vault::MissingRule {
            exit: vec![],
            stderr: None,
        }),
    );
    assert!(!v.get(PATH).unwrap_err().may_be_absent());
}

#[test]
fn failure_output_is_shown_without_terminal_control_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let push = script(
        dir.path(),
        "push-esc.sh",
        r#"cat >/dev/null; printf '\033]0;owned\007\033[2J\033[1;31mvault locked\033[0m\r\n' >&2; exit 1"#,
    );
    let vault = command_vault(dir.path(), &push, None);
    let err = vault.put(PATH, &new_secret()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("vault locked"), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}') && !text.contains('\r'),
        "{text:?}"
    );
}

#[test]
fn command_error_converts_into_the_top_level_error() {
    let dir = tempfile::tempdir().unwrap();
    let push = script(dir.path(), "push-x.sh", "cat >/dev/null; exit 1");
    let vault = command_vault(dir.path(), &push, None);
    let err: entraform::error::Error = vault.put(PATH, &new_secret()).unwrap_err().into();
    assert_eq!(err.kind(), "vault");
    assert_eq!(err.exit_code(), 1);
    assert!(err.hint().is_some());
}

// ---------------------------------------------------------------------------------------------
// keyring (real Secret Service)

// A skipped external-tool test says so on stderr (common rules).
#[allow(clippy::print_stderr)]
fn secret_service_available() -> bool {
    let present = std::env::var("ENTRAFORM_SECRET_SERVICE").as_deref() == Ok("1");
    if !present {
        assert!(
            std::env::var("ENTRAFORM_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "ENTRAFORM_REQUIRE_TOOLS=1 but no Secret Service: run the tests through \
             scripts/test.sh with gnome-keyring, dbus and libsecret-tools installed"
        );
        eprintln!(
            "note: keyring test skipped (no Secret Service; run through scripts/test.sh with \
             gnome-keyring installed)"
        );
    }
    present
}

#[test]
fn keyring_round_trip_against_a_real_secret_service() {
    if !secret_service_available() {
        return;
    }
    let service = format!("entraform-test-{}", std::process::id());
    assert_eq!(KeyringStore::detect(), KeyringStore::SecretService);
    let vault = open(
        &VaultConfig::Keyring {
            service: service.clone(),
        },
        Path::new("."),
        ENV,
    )
    .unwrap();
    assert!(
        vault.describe().contains("Secret Service"),
        "{}",
        vault.describe()
    );
    assert!(vault.get(PATH).unwrap().is_none());

    let first = new_secret();
    let report = store_verified(vault.as_ref(), PATH, &first).unwrap();
    assert!(report.verified);
    let second = new_secret();
    store_verified(vault.as_ref(), PATH, &second).unwrap();
    assert!(vault.get(PATH).unwrap().unwrap().same_as(&second));

    // The item is really in the Secret Service, under the attributes other tools look up.
    if let Ok(out) = std::process::Command::new("secret-tool")
        .args(["lookup", "service", &service, "username", PATH])
        .output()
    {
        assert!(out.status.success());
        let other = Secret::new(String::from_utf8(out.stdout).unwrap());
        assert!(other.same_as(&second), "secret-tool reads the same value");
    }

    // Called from inside a tokio worker (not spawn_blocking): must neither panic nor deadlock.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let third = new_secret();
    let ok = rt.block_on(async {
        vault.put(PATH, &third).unwrap();
        vault.get(PATH).unwrap().unwrap().same_as(&third)
    });
    assert!(ok);
    let from_blocking = rt.block_on(async {
        let service = service.clone();
        tokio::task::spawn_blocking(move || {
            let v = KeyringVault::with_store(&service, KeyringStore::SecretService).unwrap();
            v.get(PATH).unwrap().map(|s| s.len())
        })
        .await
        .unwrap()
    });
    assert_eq!(from_blocking, Some(40));

    let kv = KeyringVault::with_store(&service, KeyringStore::SecretService).unwrap();
    assert!(kv.delete(PATH).unwrap());
    assert!(!kv.delete(PATH).unwrap());
    assert!(kv.get(PATH).unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// audit

#[test]
fn audit_appends_json_lines_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = audit::default_path(dir.path());
    let secret = new_secret();
    let mut rec = AuditRecord::new(
        "0f8e7d6c-0000-4000-8000-000000000001",
        "blueprint",
        AuditAction::AddSecret,
        AuditOutcome::Success,
    );
    rec.app_id = Some("482598f7-1111-4222-8333-444455556666".into());
    rec.key_id = Some("9b1c2d3e-aaaa-4bbb-8ccc-dddddddddddd".into());
    rec.hint = Some(secret.hint());
    audit::append(&path, &rec).unwrap();

    let mut failed = AuditRecord::new(
        "t",
        "blueprint",
        AuditAction::Rollback,
        AuditOutcome::RolledBack,
    );
    // A careless caller puts a message holding the value in `detail`: it is redacted.
    failed.detail = Some(format!("push failed for {}", secret.expose()));
    audit::append(&path, &failed).unwrap();

    assert_eq!(mode(&path), 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "time", "operator", "tenant", "service", "app_id", "action", "key_id", "hint",
                "outcome", "detail"
            ]
        );
    }
    assert!(!contains_fragment(text.as_bytes(), &secret));
    let records = audit::read(&path).unwrap();
    assert_eq!(records[0].action, AuditAction::AddSecret);
    assert_eq!(records[0].hint.as_deref(), Some(&secret.expose()[..3]));
    assert_eq!(records[1].outcome, AuditOutcome::RolledBack);
    assert_eq!(records[1].detail.as_deref(), Some("push failed for ***"));
    assert!(text.contains("\"action\":\"add_secret\""));
    assert!(text.contains("\"outcome\":\"rolled_back\""));

    // more than the 3-character hint is refused, and nothing is appended
    let mut bad = rec.clone();
    bad.hint = Some(secret.expose()[..10].into());
    assert!(audit::append(&path, &bad).is_err());
    assert_eq!(audit::read(&path).unwrap().len(), 2);
}
