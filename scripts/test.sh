#!/usr/bin/env bash
# The test command (README): lint gates, then every test. Tests that need an external validator
# (caddy, compose, a Secret Service) skip when it is absent, unless ENTRAFORM_REQUIRE_TOOLS=1.
# When gnome-keyring is installed the suite runs inside a private D-Bus session with an unlocked
# keyring so the keyring backend is tested against a real Secret Service.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${_ENTRAFORM_IN_DBUS:-}" ] && command -v dbus-run-session >/dev/null && command -v gnome-keyring-daemon >/dev/null; then
  export _ENTRAFORM_IN_DBUS=1
  exec dbus-run-session -- bash "$0" "$@"
fi

if [ -n "${_ENTRAFORM_IN_DBUS:-}" ]; then
  T=$(mktemp -d "${TMPDIR:-/tmp}/entraform-ss-XXXXXX")
  trap 'rm -rf "$T"' EXIT
  export XDG_DATA_HOME=$T/data XDG_RUNTIME_DIR=$T/run
  mkdir -p "$XDG_DATA_HOME"; install -d -m 700 "$XDG_RUNTIME_DIR"
  # --unlock reads the password on stdin and creates + unlocks the default collection.
  eval "$(printf 'ci-password' | gnome-keyring-daemon --daemonize --unlock --components=secrets)"
  export ENTRAFORM_SECRET_SERVICE=1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked --all-targets "$@"
