# syntax=docker/dockerfile:1
# The tailtrace agent's image, as deploy/base/daemonset.yaml runs it:
#   docker build -t ghcr.io/tailtrace/tailtrace:<tag> .
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.
# Not built in this repository's CI: the development and CI machines have a
# Docker client but no engine, so this file is checked by reading only. Build
# it where an engine runs.

# --- build: the toolchain the project is developed and tested with ----------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The whole tree minus .dockerignore (target/, .git, bench-results). Cargo
# needs the benches it declares even to build the binary alone.
COPY . .
# `--profile dist`: the release profile with fat LTO and one codegen unit
# (Cargo.toml), ~8 % less CPU at 5,000 files for a longer build.
# The registry and target/ are cache mounts: a rebuild after a source change
# recompiles the crate, not its dependencies. The binary is copied out of
# the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --bin tailtrace \
 && cp target/dist/tailtrace /usr/local/bin/tailtrace

# --- runtime ----------------------------------------------------------------
# The same Debian release as the build image, so the same glibc (the binary
# links only libc, libm and libgcc_s).
FROM debian:bookworm-slim
# ca-certificates: the CA roots that HTTPS pushes to Loki are verified with
# (rustls reads the system store). systemd: only for the journalctl binary
# that the journal source (to come) reads the node's journal with.
# --no-install-recommends keeps out dbus, timesyncd and the rest. Versions
# are not pinned: bookworm's security updates replace them, and a pinned
# version then fails to install (hadolint DL3008).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates systemd \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/tailtrace /usr/local/bin/tailtrace
# No USER: the agent runs as root (uid 0). Pod log files are 0640 root:root,
# so only their owner, root, may read them. Running as root is what reading
# them takes; nothing more is given: the DaemonSet drops every capability,
# forbids privilege escalation and mounts the root filesystem read-only.
# /metrics, /ready and /healthz (server.http_listen_port in the config).
EXPOSE 3101
ENTRYPOINT ["/usr/local/bin/tailtrace"]
# The DaemonSet passes its own args; these are for a plain `docker run` with
# a config mounted at /etc/tailtrace/promtail.yaml.
CMD ["-config.file=/etc/tailtrace/promtail.yaml", "-config.expand-env=true"]
