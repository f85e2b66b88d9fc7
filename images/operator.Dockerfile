# dynamo-operator image built from source, for machines that can pull images.
# From the repository root:
#   docker build -f images/operator.Dockerfile -t dynamo-operator:dev .
# The operator links no RocksDB and talks to the API server over rustls, so the
# builder needs no extra packages and the runtime only CA certificates.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_BASE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p dynamo-operator \
 && install -m 0755 target/release/dynamo-operator /dynamo-operator

FROM ${RUNTIME_BASE}
RUN if [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then \
        apt-get update \
     && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
     && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --gid 10001 dynamo \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dynamo
COPY --from=builder /dynamo-operator /usr/local/bin/dynamo-operator
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dynamo-operator"]
