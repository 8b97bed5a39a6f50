# pgone container image.
#
#   docker build -t pgone:dev --build-arg VERSION=$(git describe --always --dirty) .
#   docker run --rm -p 6432:6432 -p 9930:9930 \
#     -v $PWD/pgone.yaml:/etc/pgone/pgone.yaml:ro pgone:dev
#
# The config is a mounted file (default /etc/pgone/pgone.yaml). Inside a
# container it must listen beyond loopback: `listen: "0.0.0.0:6432"` and
# `http: {listen: "0.0.0.0:9930"}` (deploy/compose/pgone.yaml is an example).
# SIGTERM (docker stop, Kubernetes) drains clients for limits.shutdown_timeout;
# give the runtime a longer stop timeout than that. SIGHUP reloads the file.

ARG GO_VERSION=1.26.8

# Build: pg_query_go compiles PostgreSQL's parser (C), so cgo is on and the
# binary links glibc dynamically; the runtime stage is a glibc image of the
# same Debian release.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/pgone ./cmd/pgone \
 && /out/pgone version

# Runtime: distroless base (glibc, CA certificates, tzdata; no shell), as
# the unprivileged user nonroot (uid 65532).
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/pgone /usr/local/bin/pgone
COPY configs/pgone.yaml /usr/share/pgone/pgone.example.yaml
USER 65532:65532
# 6432: PostgreSQL clients and the admin console (database "pgone").
# 9930: HTTP /metrics, /healthz, /readyz (no authentication: keep it private).
EXPOSE 6432 9930
STOPSIGNAL SIGTERM
# No shell or curl in the image: pgone checks itself. The URL must match
# http.listen in the mounted config (port 9930 by default).
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/pgone", "healthcheck", "--url", "http://127.0.0.1:9930/healthz"]
ENTRYPOINT ["/usr/local/bin/pgone"]
CMD ["serve", "--config", "/etc/pgone/pgone.yaml"]
