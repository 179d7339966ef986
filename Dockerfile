# Multi-stage build: compile with the Rust toolchain, run on a slim image as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Compiled in: the admin API's OpenAPI document and the vendors' test payloads.
COPY api ./api
COPY fixtures/vendors ./fixtures/vendors
COPY benches ./benches
RUN cargo build --release --locked --bin siemgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/siemgate --create-home siemgate
COPY --from=build /src/target/release/siemgate /usr/local/bin/siemgate
COPY config/siemgate.toml /etc/siemgate/siemgate.toml
USER 10001:10001
WORKDIR /var/lib/siemgate
# The example config listens on loopback; mount your own config with listen = "0.0.0.0:8080"
# (and TLS) to reach the container from outside.
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/siemgate"]
CMD ["serve", "--config", "/etc/siemgate/siemgate.toml"]
