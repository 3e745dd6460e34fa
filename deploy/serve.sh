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
# SERVE_MAX_INSTANCE_REUSE_COUNT and SERVE_IDLE_INSTANCE_TIMEOUT (instance reuse, below), and the
# component's configuration: every GCR_USAGE_* variable, and GCE_METADATA_HOST.
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

# Instance reuse. `wasmtime serve` gives a WASI 0.2 component a fresh instance per request
# unless told otherwise, which throws away what the loader caches for its instance's life:
# Google's OIDC keys (google-oidc triggers, per max-age), the access token (while it has 5 minutes
# plus the event's budget left) and the project id. Reused, an instance fetches them once, not
# once per event.
# The loader keeps nothing else between requests (gcr_usage_core::instance), so reuse changes
# fetches, not answers. Requests still never share an instance at once (a WASI 0.2 export cannot
# be re-entered): concurrent events get instances of their own, each with its own caches.
# - 1000 requests per instance: linear memory only grows (a classified load takes ~8 MiB), so a
#   bound makes any slow growth or fragmentation harmless; a new instance from the .cwasm costs
#   about a millisecond, once per 1000 events.
# - 120 s idle: log objects arrive in bursts (each bucket writes one per hour, a backfill many at
#   once); an instance lives through a burst, and its memory is released two minutes after it.
#   Longer would save one token fetch an hour at most: tokens last an hour anyway.
# Caches are per instance, so "once" means once per instance: wasmtime serve starts another
# instance for a request that arrives while the last one is still being put back in its pool
# (a client that sends the next event the instant it got an answer can meet that gap), and a
# burst of concurrent events gets one instance per event in flight.
# A trapped instance is always dropped by wasmtime, never reused. SERVE_MAX_INSTANCE_REUSE_COUNT=1
# restores one instance per request (what the cold-start benchmark compares against).
reuse=(--max-instance-reuse-count "${SERVE_MAX_INSTANCE_REUSE_COUNT:-1000}"
       --idle-instance-timeout "${SERVE_IDLE_INSTANCE_TIMEOUT:-120s}")

# -Scli: the full WASI CLI world (Rust std imports it). --allow-precompiled: the image runs a
# .cwasm (a plain .wasm still works and is compiled at start). --no-logging-prefix: each log line
# stays a bare JSON object, which Cloud Logging parses into severity and fields.
exec "$wasmtime" serve \
    --addr "0.0.0.0:${PORT:-8080}" \
    "${cache[@]}" \
    --allow-precompiled \
    -Scli \
    --no-logging-prefix \
    "${reuse[@]}" \
    "${env_args[@]}" \
    "$component"
