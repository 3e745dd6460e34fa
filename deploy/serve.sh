#!/bin/bash
# The loader's `wasmtime serve` command line, in one place. deploy/Dockerfile precompiles with
# `serve.sh --compile` and runs `serve.sh` as its ENTRYPOINT; e2e/stack.py starts every
# end-to-end loader through this same file, so the tests run the container's exact command.
#
#   serve.sh [COMPONENT]            exec wasmtime serve on 0.0.0.0:$PORT
#                                   (COMPONENT defaults to the image's /app/gcr_usage_loader.cwasm)
#   serve.sh --compile WASM CWASM   precompile WASM for that command line (image build)
#
# Environment: PORT (Cloud Run sets it; 8080 otherwise), WASMTIME (default: `wasmtime` on PATH),
# and the component's configuration: every GCR_USAGE_* variable, and GCE_METADATA_HOST.
set -euo pipefail

wasmtime="${WASMTIME:-wasmtime}"

# No on-disk compilation cache: the image ships a precompiled .cwasm, a fresh Cloud Run instance
# starts with an empty cache anyway, and Cloud Run's file system is memory.
cache=(-C cache=n)

if [[ "${1:-}" == "--compile" ]]; then
    (($# == 3)) || { echo "usage: serve.sh --compile WASM CWASM" >&2; exit 2; }
    # An explicit target compiles for the architecture's baseline instead of this machine's CPU
    # features: `wasmtime compile` without --target enables e.g. AVX2/BMI of the build host, and
    # Cloud Run may start the image on a CPU without them (wasmtime then refuses the .cwasm).
    exec "$wasmtime" compile "${cache[@]}" --target "$(uname -m)-unknown-linux-gnu" -o "$3" "$2"
fi

component="${1:-/app/gcr_usage_loader.cwasm}"

# Configuration is passed by *name* (`--env NAME` = inherit that variable's value), for every
# GCR_USAGE_* variable present, rather than with `-S inherit-env` or a fixed list:
# - `-S inherit-env` would also hand the component PATH, HOME, K_SERVICE and any unrelated
#   variable or secret of the container; the component needs only its own;
# - a fixed list goes stale whenever a variable is added (GCR_USAGE_MODE, the trigger
#   authentication variables, ...);
# - `--env NAME=VALUE` would put secret values (GCR_USAGE_TOKEN, a key) on the command line, where
#   any process can read them in /proc; by name, values stay in the environment.
# Nothing is baked into the image: values come from `gcloud run deploy --set-env-vars` or
# `--set-secrets` at run time.
env_args=()
for name in "${!GCR_USAGE_@}"; do
    env_args+=(--env "$name")
done
if [[ -v GCE_METADATA_HOST ]]; then
    env_args+=(--env GCE_METADATA_HOST)
fi

# -Scli: the full WASI CLI world (Rust std imports it). --allow-precompiled: the image runs a
# .cwasm (a plain .wasm still works and is compiled at start). --no-logging-prefix: each log line
# stays a bare JSON object, which Cloud Logging parses into severity and fields.
exec "$wasmtime" serve \
    --addr "0.0.0.0:${PORT:-8080}" \
    "${cache[@]}" \
    --allow-precompiled \
    -Scli \
    --no-logging-prefix \
    "${env_args[@]}" \
    "$component"
