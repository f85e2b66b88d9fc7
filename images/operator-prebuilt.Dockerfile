# dynamo-operator image from a binary built on the host (no registry needed).
# The build context is a directory holding only the binary
# (scripts/build-images.sh stages it):
#   docker build -f images/operator-prebuilt.Dockerfile -t dynamo-operator:dev CONTEXT
# Keep the runtime part in step with images/operator.Dockerfile.
ARG RUNTIME_BASE=dynamo-runtime-base:bookworm
FROM ${RUNTIME_BASE}
RUN if [ ! -e /etc/ssl/certs/ca-certificates.crt ]; then \
        apt-get update \
     && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
     && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --gid 10001 dynamo \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dynamo
COPY dynamo-operator /usr/local/bin/dynamo-operator
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dynamo-operator"]
