# syntax=docker/dockerfile:1
# tlsbroker container image: built from source on Debian bookworm against Debian's packages
# (gRPC 1.51, protobuf 3.21, OpenSSL 3.0, ...), run on bookworm-slim with only the runtime
# libraries, as a numeric non-root user, writing nothing outside mounted paths.
#
#   docker build -t tlsbroker:dev .
#   buildah bud --isolation chroot -t tlsbroker:dev .        (no Docker engine needed)
#
# TLSBROKER_PREBUILT and TLSBROKERCTL_PREBUILT (empty by default) name tlsbroker and tlsbrokerctl
# binaries inside the build context, built on bookworm against the same packages and already
# stripped, to use instead of compiling: the image smoke test (tests/deploy) uses them to skip the
# compile and the build stage's -dev packages. The runtime stage is the same either way.

FROM debian:bookworm-slim AS build
ARG TLSBROKER_PREBUILT=""
ARG TLSBROKERCTL_PREBUILT=""
# The -dev packages of scripts/install-deps.sh, without the test and benchmark ones; not needed
# to copy prebuilt binaries.
RUN if [ -n "${TLSBROKER_PREBUILT}" ]; then exit 0; fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev libssl-dev prometheus-cpp-dev libcivetweb-dev libyaml-cpp-dev libasio-dev \
 && rm -rf /var/lib/apt/lists/*
# The commit tlsbroker_build_info reports (the context has no .git):
#   docker build --build-arg GIT_COMMIT=$(git rev-parse --short=12 HEAD) ...
ARG GIT_COMMIT=""
WORKDIR /src
COPY . /src
# tlsbrokerctl is in the image for `helm test` and for operators (kubectl exec).
RUN if [ -n "${TLSBROKER_PREBUILT}" ]; then \
      install -D -m 0755 "/src/${TLSBROKER_PREBUILT}" /out/tlsbroker \
      && install -D -m 0755 "/src/${TLSBROKERCTL_PREBUILT}" /out/tlsbrokerctl; \
    else \
      cmake -S /src -B /tmp/build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DTLSB_BUILD_TESTS=OFF -DTLSB_BUILD_BENCHMARKS=OFF -DTLSB_GIT_COMMIT="${GIT_COMMIT}" \
      && cmake --build /tmp/build --target tlsbroker tlsbrokerctl \
      && install -D -m 0755 /tmp/build/services/tlsbroker /out/tlsbroker \
      && install -D -m 0755 /tmp/build/tools/tlsbrokerctl/tlsbrokerctl /out/tlsbrokerctl \
      && strip --strip-debug /out/tlsbroker /out/tlsbrokerctl; \
    fi

FROM debian:bookworm-slim AS runtime
ARG VERSION=0.1.0
# Which commit and when, for the OCI labels (empty when not given):
#   --build-arg GIT_COMMIT=$(git rev-parse --short=12 HEAD) --build-arg CREATED=$(date -u +%FT%TZ)
ARG GIT_COMMIT=""
ARG CREATED=""
LABEL org.opencontainers.image.title="tlsbroker" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.description="Pools of mutually-authenticated TLS sockets to backend servers, lent to applications over gRPC" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      org.opencontainers.image.source="https://example.org/tlsbroker"
# Runtime libraries only (their -dev packages are in the build stage).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libyaml-cpp0.7 libprometheus-cpp-core1.0 libcivetweb1 libssl3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY --from=build /out/tlsbroker /out/tlsbrokerctl /usr/local/bin/
# Numeric user and group so runAsNonRoot can verify them without /etc/passwd lookups. The
# broker writes nothing: the config and credentials are read-only mounts under /etc/tlsbroker,
# logs go to stderr; it runs with a read-only root filesystem.
RUN mkdir -p /etc/tlsbroker
USER 65532:65532
# 7443: gRPC API (mTLS); 9464: HTTP /metrics, /healthz, /readyz.
EXPOSE 7443/tcp 9464/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tlsbroker"]
CMD ["--config", "/etc/tlsbroker/config.yaml"]
