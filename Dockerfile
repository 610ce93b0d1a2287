# Rate Explorer: build on Debian 12 with the packages listed in
# scripts/packages (installed through scripts/lib.sh, as scripts/run and CI
# do), then run on a slim runtime image with only the runtime group.
FROM debian:12 AS build
COPY scripts/ /src/scripts/
RUN bash -c 'source /src/scripts/lib.sh && rx_install build runtime'
COPY . /src
RUN cmake -S /src -B /src/build -DCMAKE_BUILD_TYPE=Release >/dev/null && \
    cmake --build /src/build -j"$(nproc)" --target explorer

FROM debian:12
COPY scripts/ /app/scripts/
RUN bash -c 'source /app/scripts/lib.sh && rx_install runtime' && \
    useradd --system --home /app explorer
COPY --from=build /src/build/engine/explorer /usr/local/bin/explorer
COPY operators/ /app/operators/
COPY config/ /app/config/
# The generated token (when none is configured) is written beside the config.
RUN chown explorer /app/config
USER explorer
WORKDIR /app
ENV EXPLORER_CONFIG=/app/config/explorer.lua
EXPOSE 8080
CMD ["explorer"]
