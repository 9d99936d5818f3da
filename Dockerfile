# Build stage: the SQLite driver needs cgo.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o /out/openmeet-bridge .

# Runtime stage: a small Debian with CA certificates, running as non-root.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home bridge
COPY --from=build /out/openmeet-bridge /usr/local/bin/openmeet-bridge
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 29340
ENTRYPOINT ["/usr/local/bin/openmeet-bridge"]
CMD ["-c", "/data/config.yaml", "-r", "/data/registration.yaml"]
