# Multi-stage build of both binaries (api, worker) into one small runtime image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin api --bin worker

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 provisioning \
 && mkdir /ca /ocsp && chown provisioning /ca /ocsp
COPY --from=build /src/target/release/api /src/target/release/worker /usr/local/bin/
USER provisioning
EXPOSE 8080
CMD ["api", "serve"]
