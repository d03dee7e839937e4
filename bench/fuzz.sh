#!/usr/bin/env bash
# Fuzz manifest parsing and the two YAML merges with cargo-fuzz (libFuzzer) for a fixed time
# per target. The committed seeds (fuzz/seeds/<target>/: the example manifests, the render
# fixtures, each crash found so far) start it; the corpus it grows is kept in
# fuzz/corpus/<target>/ (git-ignored: thousands of files) and reused by the next run. Crashes
# land in fuzz/artifacts/<target>/: add the input to fuzz/seeds/ with the fix.
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    default: 60 s, all three targets
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (`rustup toolchain
# install nightly`); libFuzzer's instrumentation needs nightly-only rustc flags.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(manifest merge_customers merge_cloudflared)
toolchain="+nightly"
rustup run nightly rustc --version >/dev/null 2>&1 || {
    echo "no nightly toolchain: trying RUSTC_BOOTSTRAP=1 with the default one" >&2
    toolchain=""
    export RUSTC_BOOTSTRAP=1
}
# No sanitizer: the code under test is safe Rust, so the findings are panics and failed
# assertions; ASan only slows the build and the runs down.
cargo $toolchain fuzz build -s none
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    echo "== $t: ${secs}s" >&2
    if ! cargo $toolchain fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -print_final_stats=1; then
        status=1
        echo "!! $t found a crash: see fuzz/artifacts/$t/" >&2
    fi
done
exit $status
