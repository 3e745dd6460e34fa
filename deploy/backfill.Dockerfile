# `gcr-usage backfill` as a Cloud Run job (README: "How far the per-event path goes").
# Build from the repository root:
#   gcloud builds submit --config deploy/cloudbuild.yaml \
#     --substitutions=_IMAGE=REGION-docker.pkg.dev/PROJECT/gcr-usage/backfill,_DOCKERFILE=deploy/backfill.Dockerfile .
# No configuration and no credential is baked in: GCR_USAGE_* come from the job's environment,
# the token from the metadata server (the job's service account).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The native CLI only: TLS is rustls with webpki roots, so the run image needs no CA bundle.
RUN cargo build --locked --release --package gcr-usage-cli --bin gcr-usage

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent gcr-usage
COPY --from=build /src/target/release/gcr-usage /usr/local/bin/gcr-usage
USER gcr-usage
ENTRYPOINT ["/usr/local/bin/gcr-usage"]
CMD ["backfill", "--help"]
