# Ivy for Swift. `make demo` and `make test` set up everything they need on Debian.
SWIFT ?= swift
IVY_REDIS_PORT ?= 6390
export IVY_REDIS_PORT

.PHONY: demo test chaos lint build release bench deps test-deps services-up services-down clean

## demo: install missing libraries, build, run the factorial demo on the memory backend
demo: deps
	$(SWIFT) build --product ivy
	$(SWIFT) run --skip-build ivy demo

## test: install what the tests need, start the servers on loopback (Redis, the local IronMQ
## server, a private RabbitMQ node with a TLS listener), run every test with their URLs
## (`scripts/services.sh env`, which honours IVY_AMQP_PORT, IVY_AMQPS_PORT and the rest), the short
## chaos suite (its own Redis on CHAOS_REDIS_PORT, default 6391), the Examples package (built as a
## user's package would be) and the Python reference client against the Swift side both ways
## (PROTOCOL.md; a database of its own), a worker's /metrics read by Prometheus's own parser,
## the dashboard in headless Chromium (scripts/dashboard-test.sh),
## and the local IronMQ server's own tests (Iron.io's client
## when PyPI can be reached), RabbitMQ restarted under a worker and a producer, a three-node cluster losing a node,
## the Redis Cluster resharded and losing a master (scripts/redis-cluster-test.sh), stop them
test: test-deps
	$(SWIFT) build --build-tests
	scripts/services.sh up || { scripts/services.sh down; exit 1; }
	IVY_REQUIRE_SERVICES=1 scripts/services.sh run $(SWIFT) test --skip-build; \
	  status=$$?; \
	  IVY_BINARY=.build/debug/ivy scripts/chaos.sh --short || status=1; \
	  IVY_REDIS_URL=redis://127.0.0.1:$(IVY_REDIS_PORT) scripts/examples-test.sh || status=1; \
	  IVY_BINARY=.build/debug/ivy IVY_REDIS_URL=redis://127.0.0.1:$(IVY_REDIS_PORT) scripts/reference-client-test.sh || status=1; \
	  IVY_BINARY=.build/debug/ivy IVY_REDIS_URL=redis://127.0.0.1:$(IVY_REDIS_PORT) scripts/metrics-test.sh || status=1; \
	  IVY_BINARY=.build/debug/ivy IVY_REDIS_URL=redis://127.0.0.1:$(IVY_REDIS_PORT) scripts/dashboard-test.sh || status=1; \
	  scripts/ironmq-emulator-test.sh || status=1; \
	  IVY_BINARY=.build/debug/ivy scripts/ironmq-node-style-test.sh || status=1; \
	  IVY_BINARY=.build/debug/ivy scripts/amqp-restart-test.sh || status=1; \
	  IVY_BINARY=.build/debug/ivy scripts/amqp-delayed-restart-test.sh || status=1; \
	  IVY_BINARY=.build/debug/ivy scripts/amqp-cluster-test.sh || status=1; \
	  IVY_BINARY=.build/debug/ivy scripts/redis-cluster-test.sh || status=1; \
	  scripts/services.sh down; exit $$status

## chaos: the full chaos suite (workers SIGKILLed, Redis kill -9ed, poison messages); see RELIABILITY.md
chaos: test-deps
	$(SWIFT) build --product ivy
	IVY_BINARY=.build/debug/ivy scripts/chaos.sh $(CHAOS_ARGS)

## lint: swift-format's strict lint, and the DocC catalogs with warnings as errors
lint: deps
	scripts/lint.sh

## bench: release build, then `ivy bench --json` on memory, Redis, the local IronMQ server and
## RabbitMQ (servers as `make test` starts them, stopped after unless they were running), one
## table; BENCH_ARGS replaces the bench's default arguments (scripts/bench-all.sh)
bench: test-deps
	$(SWIFT) build -c release --product ivy
	scripts/bench-all.sh $(BENCH_ARGS)

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

services-up: test-deps
	scripts/services.sh up

services-down:
	scripts/services.sh down

clean:
	rm -rf .build .build-docs .build-venv .services .chaos Examples/.build
