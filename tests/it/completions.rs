//! `entraform completions <shell>`: a script for each shell that names every subcommand; an
//! unknown shell is a usage error (exit 2) that lists the shells.

use std::process::{Command, Output};

use crate::support::BIN;

const SUBCOMMANDS: [&str; 16] = [
    "plan",
    "apply",
    "render",
    "new",
    "explain",
    "schema",
    "completions",
    "emulator",
    "verify",
    "rotate",
    "secrets",
    "drift",
    "export",
    "send",
    "help",
    "entraform",
];

fn completions(shell: &str) -> Output {
    Command::new(BIN)
        .args(["completions", shell])
        .output()
        .unwrap()
}

#[test]
fn bash_completions_name_every_subcommand() {
    let out = completions("bash");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(!script.trim().is_empty());
    assert!(
        script.contains("complete -F _entraform"),
        "registers the function"
    );
    for sub in SUBCOMMANDS {
        assert!(script.contains(sub), "no {sub} in the bash completions");
    }
    // the subcommands' own options too
    assert!(script.contains("--kind"), "schema's --kind");
    assert!(script.contains("--output"), "a global option");
}

#[test]
fn every_shell_gets_a_script_naming_the_subcommands() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let out = completions(shell);
        assert_eq!(out.status.code(), Some(0), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = completions("nosh");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nosh"), "{stderr}");
    for shell in ["bash", "zsh", "fish"] {
        assert!(stderr.contains(shell), "lists {shell}: {stderr}");
    }
    let out = Command::new(BIN).arg("completions").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a shell is required: {out:?}");
}
