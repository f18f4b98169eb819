# Annals: `make run` runs the whole pipeline on a local stack, `make test` tests it against the
# real servers. Both install and start what they need (scripts/stack.sh).
SHELL := /bin/bash
GO ?= go
SERVICES := writer projector notifier auditor
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0

.PHONY: run up down stack-status build test test-short test-faults bench bench-quick lint fmt helm-sync

## run: the whole pipeline on the local stack; Ctrl-C stops the services
run:
	@scripts/run.sh

## up / down / stack-status: the local stack (PostgreSQL, Kafka, Mailpit) without Docker; with
## ANNALS_SECURE=1, the secured stack beside it (TLS-only PostgreSQL, SASL_SSL Kafka with ACLs)
up:
	@scripts/stack.sh up
down:
	@scripts/stack.sh down
stack-status:
	@scripts/stack.sh status

## build: the four services and the admin CLI into bin/
build:
	@mkdir -p bin
	@for s in $(SERVICES); do $(GO) build -o bin/annals-$$s ./services/$$s || exit 1; done
	@$(GO) build -o bin/annals ./cmd/annals

## test: everything, against real PostgreSQL, Kafka and Mailpit (started when needed)
test:
	@scripts/test.sh

## test-short: the tests that need no server
test-short:
	$(GO) test -short -count=1 ./...

## test-faults: the relay under SIGKILL and a broker restart, the consumers under SIGKILL, the notifier
## under a broker SIGKILL, ANNALS_FAULT_ROUNDS rounds each (default 5); the MongoDB relay contract at full size
test-faults:
	@scripts/test-faults.sh

## bench: the whole pipeline against the physical limits of its servers (pgbench, Kafka's own
## tools, plain SMTP), in one run: the table, bench/results.json and bench/latency.png
bench:
	@scripts/bench.sh

## bench-quick: the same in about a minute and a half (short runs, small pre-fills)
bench-quick:
	@scripts/bench.sh --quick

## lint: gofmt, go vet and staticcheck on the three modules
lint:
	@out=$$(gofmt -l . | grep -v '^\.stack/'); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd deploy && $(GO) vet ./...
	cd tools && $(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	cd deploy && $(GO) run $(STATICCHECK) ./...
	cd tools && $(GO) run $(STATICCHECK) ./...

## fmt: format the Go code
fmt:
	gofmt -w $$(git ls-files '*.go')

## helm-sync: copy the Grafana dashboards and the alert rules into the Helm chart, which cannot
## read files outside its folder (deploy/helmcheck fails while a copy differs from its source)
helm-sync:
	@rm -f deploy/helm/annals/files/dashboards/*.json
	@mkdir -p deploy/helm/annals/files/dashboards
	cp deploy/grafana/dashboards/*.json deploy/helm/annals/files/dashboards/
	cp deploy/prometheus/rules/annals.rules.yml deploy/helm/annals/files/annals.rules.yml
