// Package composecheck holds the tests of the Docker deployment files at the
// repository root: docker-compose.yml, Dockerfile and .dockerignore, and the
// Prometheus and Grafana files under deploy/ that the compose file mounts.
//
// No Docker engine is needed:
//
//   - The compose file is loaded with compose-go, the library docker compose
//     itself uses, and checked for consistency: every environment variable
//     given to an Annals container is a configuration key and is accepted by
//     the real configuration loader; listen addresses, published ports,
//     health checks, broker, database and SMTP addresses, dependencies and
//     the Prometheus scrape targets all agree with each other.
//   - The Dockerfile is parsed with BuildKit's own parser. Its build stage is
//     replayed on the host: the build context is assembled as .dockerignore
//     filters it, COPY and WORKDIR are applied to a temporary folder, and
//     each RUN command runs with `sh -c`, its text unchanged; only the
//     OUT_DIR build argument points at a temporary folder. The binaries it
//     produces must be static executables, and `annals probe` (the
//     containers' health check) must report healthy and unhealthy endpoints
//     by its exit code.
//
// The build replay takes a few minutes on a small machine and is skipped with
// -short. This package lives in its own module (deploy/go.mod) so that
// compose-go and BuildKit are not dependencies of the annals library.
//
// Run with:
//
//	cd deploy && go test ./...
package composecheck
