# dynamo-node image built from source, for machines that can pull images.
# From the repository root:
#   docker build -f images/node.Dockerfile -t dynamo-node:dev .
# The builder stage compiles against Debian's librocksdb-dev; the runtime
# stage carries only the shared libraries the binary links (librocksdb7.8 and
# its dependencies) and ca-certificates. Without a registry, build the binary
# on the host and use images/node-prebuilt.Dockerfile (docs/images.md).
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_BASE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends librocksdb-dev libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# .cargo/config.toml points ROCKSDB_LIB_DIR at the x86_64 multiarch directory;
# derive it from the builder's architecture instead.
RUN ROCKSDB_LIB_DIR="/usr/lib/$(gcc -print-multiarch)" cargo build --release --locked -p dynamo-node \
 && install -m 0755 target/release/dynamo-node /dynamo-node

FROM ${RUNTIME_BASE}
RUN if ! ldconfig -p | grep -q 'librocksdb\.so\.7\.8'; then \
        apt-get update \
     && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends librocksdb7.8 ca-certificates \
     && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --gid 10001 dynamo \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/dynamo --shell /usr/sbin/nologin dynamo \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/dynamo
COPY --from=builder /dynamo-node /usr/local/bin/dynamo-node
USER 10001:10001
ENV DYNAMO_LISTEN=0.0.0.0:7000 \
    DYNAMO_DATA_DIR=/var/lib/dynamo
EXPOSE 7000 7001
ENTRYPOINT ["/usr/local/bin/dynamo-node"]
CMD ["serve"]
