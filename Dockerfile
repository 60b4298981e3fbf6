# usage-tracker container image.
#
#   docker build -t ghcr.io/ferrisdx/usage-tracker:dev .
#   docker run --rm ghcr.io/ferrisdx/usage-tracker:dev --help
#
# Two stages: a Rust builder, and a slim Debian runtime that only holds the binary, the CA
# certificates and OpenSSL. Migrations are embedded in the binary (sqlx::migrate!) and the Avro
# schemas are compiled in (include_str!); the schemas are also copied to
# /usr/share/usage-tracker/schemas for reference and for `schemas check --schema-dir`.

# The locked dependencies need Rust >= 1.89 (uuid 1.29, apache-avro 0.22 ask for 1.88/1.89), so the
# `rust-version = "1.85"` of Cargo.toml is not enough to build Cargo.lock. Builder and runtime use
# the same Debian release, so the binary's glibc and libssl match.
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder

# - rdkafka-sys builds librdkafka from source (its ./configure and make): gcc/g++, make,
#   pkg-config, and zlib1g-dev for its `libz` feature (the only one this crate enables; librdkafka
#   is therefore built without SSL, SASL/GSSAPI and zstd).
# - openssl-sys (sqlx with tls-native-tls) links the system OpenSSL: libssl-dev.
# - aws-lc-sys (reqwest -> rustls) builds with cc; cmake is its fallback builder.
# libsasl2-dev is only needed if rdkafka's `gssapi` feature is ever enabled.
# Most of these are already in the rust:*-bookworm image; listing them keeps the build explicit.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential \
        cmake \
        pkg-config \
        libssl-dev \
        zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# 1. Dependency layer: build every dependency against stub sources, so that changing src/ does not
#    rebuild librdkafka and the rest. Only the manifests and the lock file invalidate this layer.
#    The workspace member tools/registry-standin and the [[bench]] target must exist for Cargo to
#    read the manifest; they get stubs and are never built. The stub crate's artifacts are then
#    deleted, so the real sources below are always compiled, whatever their mtimes.
COPY Cargo.toml Cargo.lock ./
COPY tools/registry-standin/Cargo.toml tools/registry-standin/Cargo.toml
RUN mkdir -p src benches tools/registry-standin/src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/core.rs \
    && echo 'fn main() {}' > tools/registry-standin/src/main.rs \
    && touch tools/registry-standin/src/lib.rs \
    && cargo build --release --locked --bin usage-tracker \
    && rm -rf src \
        target/release/usage-tracker \
        target/release/deps/usage_tracker-* \
        target/release/deps/libusage_tracker-* \
        target/release/.fingerprint/usage-tracker-*

# 2. The tracker: its sources, plus what they embed at compile time.
COPY schemas schemas
COPY migrations migrations
COPY src src
RUN cargo build --release --locked --bin usage-tracker \
    && install -D -m 0755 target/release/usage-tracker /out/usage-tracker


FROM debian:${DEBIAN_RELEASE}-slim AS runtime

LABEL org.opencontainers.image.title="usage-tracker" \
      org.opencontainers.image.description="Per-namespace Kubernetes usage and cost accounting" \
      org.opencontainers.image.licenses="Apache-2.0"

# ca-certificates: TLS to the registry and Postgres (rustls uses the system store).
# libssl3: OpenSSL for sqlx's native-tls. zlib and libgcc are already in the base image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 usage-tracker \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin usage-tracker

COPY --from=builder /out/usage-tracker /usr/local/bin/usage-tracker
COPY schemas /usr/share/usage-tracker/schemas

# Numeric, so that Kubernetes' runAsNonRoot can verify it without looking up /etc/passwd.
USER 10001:10001

# /metrics, /healthz and /readyz ([http] listen, default 0.0.0.0:9898). No HEALTHCHECK: Kubernetes
# probes (and the compose file's healthcheck) call the endpoints.
EXPOSE 9898

ENTRYPOINT ["usage-tracker"]
CMD ["run"]
