# Build stage: the SQLite driver needs cgo.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git (.dockerignore), so Go cannot stamp the
# revision; the version comes from this argument instead:
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/openmeet-bridge .

# Runtime stage: a small Debian with CA certificates, running as uid and
# gid 10001. /data belongs to that user; a new named volume mounted there
# inherits that, a host directory must be made writable for 10001 (or run
# the container with --user set to the directory's owner).
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --create-home bridge
COPY --from=build /out/openmeet-bridge /usr/local/bin/openmeet-bridge
# The image's defaults: listen on all interfaces, Synapse at synapse:8008,
# the database in /data, metrics on 29341 (deploy/container/config.yaml).
COPY deploy/container/config.yaml /etc/openmeet-bridge/defaults.yaml
USER 10001:10001
WORKDIR /data
VOLUME /data
# 29340: Synapse's pushes, the provisioning and client APIs.
# 29341: /metrics and the health endpoints, for operators only.
EXPOSE 29340 29341
ENTRYPOINT ["/usr/local/bin/openmeet-bridge", "-defaults", "/etc/openmeet-bridge/defaults.yaml"]
CMD ["-c", "/data/config.yaml", "-r", "/data/registration.yaml"]
