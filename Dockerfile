# syntax=docker/dockerfile:1

# One image for the whole system: the four services and the admin CLI.
# docker-compose.yml (and the Helm chart) pick the binary to run per container:
#
#   /usr/local/bin/annals-writer     command API and outbox relay   (:8080)
#   /usr/local/bin/annals-projector  read models and query API      (:8081)
#   /usr/local/bin/annals-notifier   e-mail notifications           (:8082)
#   /usr/local/bin/annals-auditor    hash-chained audit log         (:8083)
#   /usr/local/bin/annals            admin CLI: migrate, topics, probe, ...
#
# The runtime image has no shell: container health checks run
# `annals probe http://127.0.0.1:<port>/readyz`.
#
# Build arguments: VERSION (stamped into every binary, default "dev"),
# GO_VERSION, and OUT_DIR (the build stage's output folder). The tests in
# deploy/composecheck replay the build stage's RUN commands on the host with
# OUT_DIR pointed at a temporary folder, so keep those commands free of other
# absolute paths.

ARG GO_VERSION=1.26
# Where the build stage writes the binaries (the runtime stage copies them
# from there).
ARG OUT_DIR=/out

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src

ARG OUT_DIR
# Printed by `annals version` and the services' logs.
ARG VERSION=dev

# Module downloads get their own layer: it is rebuilt only when go.mod or
# go.sum change, not on every source edit.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

# Static binaries (no cgo, no libc), reproducible paths, no symbol tables,
# all linked by one `go build`. `-o DIR/` names each binary after its package
# directory; the services are renamed to annals-<name> afterwards.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    mkdir -p "$OUT_DIR"; \
    CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X github.com/annals-dev/annals/internal/app.Version=$VERSION" \
        -o "$OUT_DIR/" \
        ./services/writer ./services/projector ./services/notifier ./services/auditor \
        ./cmd/annals; \
    for svc in writer projector notifier auditor; do \
        mv "$OUT_DIR/$svc" "$OUT_DIR/annals-$svc"; \
    done


FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG OUT_DIR

LABEL org.opencontainers.image.title="annals" \
      org.opencontainers.image.description="Event-sourcing pipeline on PostgreSQL and Kafka: writer, projector, notifier, auditor and the annals CLI" \
      org.opencontainers.image.source="https://github.com/annals-dev/annals"

COPY --from=build ${OUT_DIR}/ /usr/local/bin/
COPY config/event_sourcing.tsk /etc/annals/event_sourcing.tsk
ENV ANNALS_CONFIG=/etc/annals/event_sourcing.tsk

# distroless' nonroot user (65532); set again here so that the image is
# non-root even if the base tag changes.
USER 65532:65532

EXPOSE 8080 8081 8082 8083

ENTRYPOINT ["/usr/local/bin/annals-writer"]
