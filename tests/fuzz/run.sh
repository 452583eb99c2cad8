#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that take outside input (libFuzzer through cargo-fuzz,
# with AddressSanitizer): the HL7 v2 ORU^R01 parser, MLLP framing, the FHIR transaction-Bundle
# importer, the screening intake document, rating-scale answers and the dose calculator.
#
#   tests/fuzz/run.sh                 every target for FUZZ_SECONDS (default 20) each
#   tests/fuzz/run.sh hl7_oru 600     one target for ten minutes
#
# First every file under fuzz/regressions/<target>/ (inputs that once crashed a target) is run
# once; then each target fuzzes from fuzz/seeds/<target>/ plus the corpus it builds in
# fuzz/corpus/<target>/ (not committed). A crash stops the run with exit 1 and leaves the input
# in fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/ with the fix.
#
# cargo-fuzz passes AddressSanitizer flags that the stable compiler accepts only with
# RUSTC_BOOTSTRAP=1, which this script sets for the fuzz build alone; the shipped binary is
# built without it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../fuzz"

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "Installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
export RUSTC_BOOTSTRAP=1

seconds=${2:-${FUZZ_SECONDS:-20}}
if [ $# -ge 1 ]; then targets=("$1"); else mapfile -t targets < <(cargo fuzz list); fi

cargo fuzz build --release
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "regressions/$t"
    if compgen -G "regressions/$t/*" >/dev/null; then
        echo "== $t: regressions"
        cargo fuzz run --release "$t" regressions/"$t"/* -- -runs=0
    fi
    echo "== $t: ${seconds} s"
    log=$(mktemp)
    if ! cargo fuzz run --release "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        grep -E "panicked|SUMMARY|ERROR|Test unit written" "$log" >&2 || tail -n 40 "$log" >&2
        echo "fuzz target $t failed; the input is under fuzz/artifacts/$t/: fix the cause and copy it to fuzz/regressions/$t/" >&2
        exit 1
    fi
    grep -E "DONE|stat::number_of_executed_units|stat::peak_rss_mb" "$log"
    rm -f "$log"
done
echo "fuzzing: ${#targets[@]} targets, ${seconds} s each, no crash"
