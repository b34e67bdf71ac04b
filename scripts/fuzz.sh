#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer target in fuzz/ for FUZZ_RUNS executions,
# starting from the committed seeds, and writes what each run did into the
# fuzzing section of BENCHMARKS.md. Fails if any target finds a crash or a
# hang (its reproducer lands in fuzz/artifacts/<target>/).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${FUZZ_RUNS:-1000000}
TARGETS=${FUZZ_TARGETS:-config_file kube_object xds_stream}
OUT=${FUZZ_OUT:-BENCHMARKS.md}
CARGO=${CARGO:-cargo}

if ! command -v cargo-fuzz >/dev/null; then
  "$CARGO" install cargo-fuzz --locked --version 0.13.2
fi

# Inputs longer than a target reads are cut: the stream target reads at
# most 64 operations of 4 bytes after its first byte.
max_len() {
  case "$1" in
    xds_stream) echo 260 ;;
    *) echo 16384 ;;
  esac
}

# Built once up front, so the times below are the runs' alone.
(cd fuzz && "$CARGO" fuzz build --sanitizer none -O)

rows=""
status=0
mkdir -p fuzz/logs
for t in $TARGETS; do
  mkdir -p "fuzz/corpus/$t"
  log="fuzz/logs/$t.log"
  echo "fuzz $t: $RUNS executions"
  start=$(date +%s)
  # --sanitizer none: the code is safe Rust, so coverage guidance is what
  # matters and AddressSanitizer would only slow every execution down.
  if (cd fuzz && "$CARGO" fuzz run --sanitizer none -O "$t" "corpus/$t" "seeds/$t" -- \
        -runs="$RUNS" -timeout=10 -rss_limit_mb=4096 -max_len="$(max_len "$t")" \
        -print_final_stats=1) >"$log" 2>&1; then
    result="no crash, no hang"
  else
    result="FAILED: see $log"
    status=1
  fi
  secs=$(( $(date +%s) - start ))
  stat() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}'; }
  execs=$(stat number_of_executed_units || true)
  rate=$(stat average_exec_per_sec || true)
  rss=$(stat peak_rss_mb || true)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  seeds=$(find "fuzz/seeds/$t" -type f | wc -l)
  rows+="| \`$t\` | ${execs:-?} | ${secs} s | ${rate:-?} | ${seeds} → ${corpus} | ${rss:-?} MB | ${result} |"$'\n'
  tail -n 5 "$log"
done

section="<!-- fuzz:begin -->
## Fuzzing (\`make fuzz\`)

$(date +%F) on $(nproc) cores. Each target is a function in \`pilot-discovery/src/fuzzing.rs\`, run by libFuzzer through cargo-fuzz (coverage instrumentation, no sanitizer, optimised) for ${RUNS} executions from the seeds in \`fuzz/seeds/\`. Besides not panicking or hanging (10 s per input), each target checks the rules discovery promises: errors name their file or cluster, accepted config is served to a sidecar, a local-mode sidecar and a gateway, and an ADS stream never answers a NACK or a stale nonce, never repeats a nonce, pushes in order and enforces the certificate's namespace. \`make test\` runs every seed and a few thousand mutations of them (\`fuzzing::tests\`).

| Target | Executions | Time | Executions/s | Seeds → corpus | Peak RSS | Result |
|---|---|---|---|---|---|---|
${rows}
Regenerate with \`make fuzz\` (\`FUZZ_RUNS=N\` to change the count).
<!-- fuzz:end -->"

python3 - "$OUT" "$section" <<'PY'
import sys
path, section = sys.argv[1], sys.argv[2]
begin, end = "<!-- fuzz:begin -->", "<!-- fuzz:end -->"
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
b, e = text.find(begin), text.find(end)
if b != -1 and e > b:
    text = text[:b] + section + text[e + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
exit $status
