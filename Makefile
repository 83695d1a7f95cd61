# Herald — see README.md. Every target works on a fresh machine with Go 1.26.
GO        ?= go
BIN       ?= bin
# A count, not a duration: a duration-based -fuzztime can fail with "context deadline
# exceeded" and no crasher when it expires while a worker runs (go.dev/issue/75804, in Go 1.26).
FUZZTIME  ?= 50000x
STATICCHECK_VERSION ?= v0.8.2
BENCHSTAT_VERSION   ?= v0.0.0-20260908200009-22c9c6c9d4da

.PHONY: run build test test-web fuzz fuzz-list lint openapi-lint bench bench-load clean

## run: start Herald on the embedded store with development credentials
run:
	$(GO) run ./cmd/herald serve --dev

## build: build the herald binary into bin/
build:
	$(GO) build -o $(BIN)/herald ./cmd/herald

## test: every test with the race detector (PostgreSQL tests start a throwaway cluster), then short fuzz runs,
## then the browser client's tests (test-web)
test:
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz
	$(MAKE) test-web

## test-web: the browser client (api/web): unit tests (node --test, no dependency), its types
## (tsc --noEmit), tests against the real binary (ws as the transport) and in Chromium
## (playwright-core driving /usr/bin/chromium, Debian's package: apt-get install -y chromium;
## without it the browser tests are skipped, with a reason, unless CI=true). The pinned
## devDependencies of api/web/package-lock.json are installed by npm ci into .tools/web on
## first use. WEB_SCREENSHOT=path also saves the demo's screenshot there (the README's).
WEB_TOOLS = .tools/web
test-web: $(WEB_TOOLS)/.installed
	node --test api/web/test/*.test.js
	$(WEB_TOOLS)/node_modules/.bin/tsc -p api/web/test/tsconfig.json
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/herald ./cmd/herald
	HERALD_BIN="$(abspath $(BIN)/herald)" HERALD_WEB_TOOLS="$(abspath $(WEB_TOOLS))" HERALD_WEB_SCREENSHOT="$(WEB_SCREENSHOT)" \
		node --test --test-concurrency=1 api/web/e2e/*.test.js

$(WEB_TOOLS)/.installed: api/web/package.json api/web/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "test-web needs node (20.19 or later) and npm to install its pinned devDependencies"; exit 1; }
	rm -rf $(WEB_TOOLS) && mkdir -p $(WEB_TOOLS)
	cp api/web/package.json api/web/package-lock.json $(WEB_TOOLS)/
	npm ci --prefix $(WEB_TOOLS) --ignore-scripts --no-audit --no-fund
	touch $@

## fuzz: short fuzz runs of every fuzz target in the tree (FUZZ_TARGETS, package:name;
## make fuzz fails when a Fuzz function is missing from the list)
FUZZ_TARGETS = .:FuzzNotificationJSON ./api/:FuzzCreateRequest ./api/auth/:FuzzAuthenticate \
	./api/auth/:FuzzClaims ./api/ws/wire/:FuzzParseClientFrame ./api/events/rules/:FuzzParse \
	./cmd/herald-bench/:FuzzDecodeFrame ./api/:FuzzDecodeCreate
fuzz: fuzz-list
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done

fuzz-list:
	@missing=; for f in $$(git grep -h -o '^func Fuzz[A-Za-z0-9_]*' -- '*_test.go' | sed 's/^func //' | sort -u); do \
		case " $(FUZZ_TARGETS) " in *":$$f "*) ;; *) missing="$$missing $$f";; esac; \
	done; if [ -n "$$missing" ]; then echo "fuzz targets missing from FUZZ_TARGETS in the Makefile:$$missing"; exit 1; fi

## lint: no build output in git, gofmt, go vet, staticcheck (installed from the Go module proxy if
## missing) and openapi-lint
lint: fuzz-list
	@bad=; for f in $$(git ls-files); do [ -f "$$f" ] || continue; \
		size=$$(wc -c < "$$f"); \
		if [ "$$size" -gt 1048576 ]; then bad="$$bad\n  $$f: $$size bytes (over 1 MiB)"; fi; \
		case "$$(head -c 4 "$$f" | od -An -c | tr -d ' ')" in \
			177ELF*|MZ*|\317\372\355\376*|\316\372\355\376*) bad="$$bad\n  $$f: an executable binary";; \
		esac; \
	done; if [ -n "$$bad" ]; then printf "tracked files that belong out of git (build outputs, binaries):$$bad\n"; exit 1; fi
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...
	$(MAKE) openapi-lint

## openapi-lint: api/openapi.yaml must be valid OpenAPI with no problem at all (redocly lint, every
## warning an error; the rules in api/openapi-lint/redocly.yaml, the accepted exceptions in
## api/openapi-lint/.redocly.lint-ignore.yaml). The linter is the exact version of
## api/openapi-lint/package-lock.json, installed by npm ci into .tools/openapi-lint on first use.
REDOCLY = .tools/openapi-lint/node_modules/.bin/redocly
openapi-lint: .tools/openapi-lint/.installed
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true $(REDOCLY) lint --config api/openapi-lint/redocly.yaml api/openapi.yaml

.tools/openapi-lint/.installed: api/openapi-lint/package.json api/openapi-lint/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "openapi-lint needs node (20.19 or later) and npm to install the linter"; exit 1; }
	rm -rf .tools/openapi-lint && mkdir -p .tools/openapi-lint
	cp api/openapi-lint/package.json api/openapi-lint/package-lock.json .tools/openapi-lint/
	npm ci --prefix .tools/openapi-lint --ignore-scripts --no-audit --no-fund
	touch $@

## bench: stored notifications/s through the persistence actor, on PostgreSQL (fsync on)
## and the embedded store; six runs each, summarised by benchstat (medians); then bench-load
bench:
	@mkdir -p .bench
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 10x -count 6 ./actors/persist/ ./persistence/... | tee .bench/latest.txt
	@command -v benchstat >/dev/null 2>&1 || $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" benchstat .bench/latest.txt
	$(MAKE) bench-load

## bench-load: herald-bench's standard suite against bin/herald on loopback, on the embedded
## store and on a throwaway PostgreSQL (fsync on): each run's JSON and Markdown in
## .bench/load-*, one table of them all in .bench/load.md (and on stdout). It leads with the
## path most applications take: single creates (one POST /notifications each, 64 in flight),
## flat out and at 5,000/s, one body to 100 users per request (8 publishers), then connects
## of 2,000 users with their snapshot and a broadcast to 1,000 users, on PostgreSQL; it
## ends with single creates flat out on one node and on three (each user's 2 sockets on
## other nodes than its publisher's). About ten minutes.
## The server runs with its defaults (HERALD_* variables unset), rate limits off.
LOAD_TIMEOUT ?= 150s
bench-load:
	@mkdir -p .bench $(BIN)
	$(GO) build -o $(BIN)/herald ./cmd/herald
	$(GO) build -o $(BIN)/herald-bench ./cmd/herald-bench
	@rm -f .bench/load-*.json .bench/load-*.md .bench/load.md
	@for v in $$(env | sed -n 's/^\(HERALD_[A-Za-z0-9_]*\)=.*/\1/p'); do unset $$v; done; \
	if [ "$$(ulimit -n)" != unlimited ] && [ "$$(ulimit -n)" -lt 20000 ]; then \
		ulimit -n 20000 2>/dev/null || echo "bench-load: cannot raise the open-file limit to 20000 (it is $$(ulimit -n)): the 15,000-connection runs may fail" >&2; \
	fi; \
	status=0; files=; \
	load() { \
		name=$$1; shift; files="$$files .bench/load-$$name.json"; \
		echo "bench-load: $$name: herald-bench $$*" >&2; \
		$(BIN)/herald-bench -start-server $(BIN)/herald -quiet -timeout $(LOAD_TIMEOUT) -connect-timeout 60s \
			-out .bench/load-$$name.json "$$@" > .bench/load-$$name.md || { status=1; echo "bench-load: $$name failed: see .bench/load-$$name.md" >&2; }; \
	}; \
	load 01-pg-single-flat -postgres throwaway -scenario deliver -n 1000 -publish single -publishers 64 -rate 0 -duration 15s; \
	load 02-pg-single-5k -postgres throwaway -scenario deliver -n 1000 -publish single -publishers 64 -rate 5000 -duration 15s; \
	load 02b-pg-multicast -postgres throwaway -scenario deliver -n 1000 -publish multicast -batch-size 100 -publishers 8 -rate 0 -duration 15s; \
	load 03-pg-connect -postgres throwaway -scenario idle -n 2000 -concurrency 128 -duration 5s; \
	load 04-pg-broadcast-1k -postgres throwaway -scenario broadcast -n 1000 -rounds 5; \
	load 05-single-flat -scenario deliver -n 1000 -publish single -publishers 64 -rate 0 -duration 15s; \
	load 06-idle -scenario idle -n 15000 -duration 10s; \
	load 07-deliver -scenario deliver -n 1000 -rate 10000 -duration 15s -publish batch -batch-size 100; \
	load 08-deliver-flat -scenario deliver -n 5000 -rate 0 -duration 15s -publish batch -batch-size 100; \
	load 09-broadcast -scenario broadcast -n 15000 -rounds 3; \
	load 10-storm -scenario reconnect-storm -n 2000 -rate 2000 -duration 15s; \
	load 11-events -scenario events -n 1000 -fanout 10 -rate 500 -duration 15s; \
	load 12-pg-deliver -postgres throwaway -scenario deliver -n 5000 -rate 10000 -duration 15s -publish batch -batch-size 100; \
	load 13-pg-deliver-flat -postgres throwaway -scenario deliver -n 5000 -rate 0 -duration 15s -publish batch -batch-size 100; \
	load 14-pg-broadcast -postgres throwaway -scenario broadcast -n 15000 -rounds 3; \
	load 15-pg-nodes1-flat -postgres throwaway -nodes 1 -sockets 2 -scenario deliver -n 5000 -publish single -publishers 64 -rate 0 -duration 15s; \
	load 16-pg-nodes3-flat -postgres throwaway -nodes 3 -sockets 2 -scenario deliver -n 5000 -publish single -publishers 64 -rate 0 -duration 15s; \
	load 16b-pg-nodes3-procs1-flat -postgres throwaway -nodes 3 -sockets 2 -server-procs 1 -scenario deliver -n 5000 -publish single -publishers 64 -rate 0 -duration 15s; \
	$(BIN)/herald-bench -summarize $$files > .bench/load.md || status=1; \
	cat .bench/load.md; \
	exit $$status

clean:
	rm -rf $(BIN) .tools
