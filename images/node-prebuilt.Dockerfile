# dynamo-node image from a binary built on the host: no builder stage, so it
# needs no Rust image and no registry. The build context is a directory that
# holds only the binary (scripts/build-images.sh stages it):
#   docker build -f images/node-prebuilt.Dockerfile -t dynamo-node:dev CONTEXT
# RUNTIME_BASE defaults to the image scripts/docker-base.sh makes with
# debootstrap; with a registry, debian:bookworm-slim works too (the runtime
# libraries are then installed with apt). Keep the runtime part in step with
# images/node.Dockerfile.
ARG RUNTIME_BASE=dynamo-runtime-base:bookworm
FROM ${RUNTIME_BASE}
RUN if ! ldconfig -p | grep -q 'librocksdb\.so\.7\.8'; then \
        apt-get update \
     && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends librocksdb7.8 ca-certificates \
     && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --gid 10001 dynamo \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/dynamo --shell /usr/sbin/nologin dynamo \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/dynamo
COPY dynamo-node /usr/local/bin/dynamo-node
USER 10001:10001
ENV DYNAMO_LISTEN=0.0.0.0:7000 \
    DYNAMO_DATA_DIR=/var/lib/dynamo
EXPOSE 7000 7001
ENTRYPOINT ["/usr/local/bin/dynamo-node"]
CMD ["serve"]
