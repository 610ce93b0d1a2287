# Rate Explorer: build on Debian 12 with the packages listed in
# scripts/packages (installed through scripts/lib.sh, as scripts/run and CI
# do: one package list), then run on a plain Debian 12 image with only the
# runtime group.
#
# Mount points (no VOLUME: an anonymous volume would keep a container's old
# operators across an image upgrade, since compose carries such volumes over
# when it recreates a container):
#   /app/operators  one .lua per exchange; a bind mount is hot-reloaded
#                   (inotify), read-only is fine.
#   /app/config     explorer.lua ($EXPLORER_CONFIG); without a configured
#                   token the service writes explorer.token here, so mount it
#                   writable by uid 10001 or set $API_AUTHENTICATION_TOKEN.
# docs/operations.md, "Deployment", has the topologies and compose profiles.

FROM debian:12 AS build
WORKDIR /src
# Only the package list first, so a source change does not reinstall them.
COPY scripts/lib.sh scripts/packages scripts/
RUN bash -c 'source scripts/lib.sh && rx_install build runtime'
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && \
    cmake --build build -j"$(nproc)" --target explorer

FROM debian:12
COPY scripts/lib.sh scripts/packages /tmp/rx/scripts/
RUN bash -c 'source /tmp/rx/scripts/lib.sh && rx_install runtime' && \
    rm -rf /tmp/rx /var/lib/apt/lists/* && \
    useradd --uid 10001 --user-group --no-create-home --home-dir /app \
        --shell /usr/sbin/nologin explorer
COPY --from=build /src/build/engine/explorer /usr/local/bin/explorer
COPY operators/ /app/operators/
COPY config/ /app/config/
# The generated token (when none is configured) is written beside the config.
RUN chown explorer:explorer /app/config
USER explorer
# Relative paths in the config (operators_dir = "operators") resolve here.
WORKDIR /app
ENV EXPLORER_CONFIG=/app/config/explorer.lua
EXPOSE 8080
# explorer has no probe mode; curl (scripts/packages says why it is in the
# runtime group) asks /healthz, which needs no token. $PORT, when set, is
# the port explorer listens on; --noproxy keeps an http_proxy in the
# environment from carrying the probe away.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS --noproxy '*' -o /dev/null "http://127.0.0.1:${PORT:-8080}/healthz" || exit 1
# explorer runs as PID 1 (exec form) and installs its own SIGTERM, SIGINT
# and SIGHUP handlers (libuv, on the API loop), so the kernel's PID-1 rule
# of dropping signals without a handler does not apply; it starts no child
# processes, so nothing needs reaping. SIGTERM: /readyz 503, listener
# closed, leases released, exit 0.
STOPSIGNAL SIGTERM
CMD ["explorer"]
