#!/usr/bin/env bash
# Builds and runs the libFuzzer targets on the stable toolchain.
#
#   fuzz/run.sh build                          build both targets
#   fuzz/run.sh TARGET CORPUS_DIR [OPTION...]  build, then fuzz TARGET
#   fuzz/run.sh TARGET FILE...                 build, then replay crash files
#
# TARGET is engine_calls or scenario_parser. New corpus entries are written
# to CORPUS_DIR (created if missing); the seeds in fuzz/corpus/TARGET are
# read but never written. OPTIONs are libFuzzer's (-max_total_time=N,
# -jobs=N, -runs=N, ...). Crashes land in fuzz/artifacts/TARGET/ (or in
# $FUZZ_ARTIFACTS/TARGET/).
#
# No nightly toolchain and no cargo-fuzz are needed: the coverage
# instrumentation cargo-fuzz would ask rustc for (SanitizerCoverage with
# inline 8-bit counters, PC table, comparison tracing) is enabled through
# stable `-C` options, and libfuzzer-sys builds libFuzzer itself with the
# system C++ compiler. Without a sanitizer, memory errors in unsafe code
# would go unseen, but the engine is `#![forbid(unsafe_code)]`; every panic
# (failed check, overflow, out-of-bounds index) is a crash.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
host="$(rustc -vV | sed -n 's/^host: //p')"
bin="$here/target/$host/release"

build() {
    # --target keeps RUSTFLAGS away from build scripts and proc macros
    # (they must not be instrumented); --target-dir keeps the instrumented
    # build apart from the workspace's.
    RUSTFLAGS="${RUSTFLAGS:-} --cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cllvm-args=-sanitizer-coverage-stack-depth" \
        cargo build --manifest-path "$here/Cargo.toml" --target-dir "$here/target" \
        --release --target "$host" --bins
}

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 1 ] || usage
target="$1"
shift
case "$target" in
build)
    build
    exit 0
    ;;
engine_calls)
    # Each input is a sequence of up to 64 operations: let inputs be long
    # from the start rather than growing slowly.
    defaults=(-max_len=1024 -len_control=0)
    ;;
scenario_parser)
    defaults=(-dict="$here/scenario_parser.dict")
    ;;
*)
    echo "unknown target \`$target\` (engine_calls, scenario_parser)" >&2
    exit 2
    ;;
esac
[ $# -ge 1 ] || usage
build >&2

artifacts="${FUZZ_ARTIFACTS:-$here/artifacts}/$target"
mkdir -p "$artifacts"
if [ -f "$1" ]; then
    # Replay: run each file once and report.
    exec "$bin/$target" -rss_limit_mb=2048 "${defaults[@]}" "$@"
fi
corpus="$1"
shift
seeds="$here/corpus/$target"
mkdir -p "$corpus" "$seeds"
exec "$bin/$target" -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${defaults[@]}" "$@" "$corpus" "$seeds"
