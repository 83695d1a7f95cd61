# Herald — see README.md. Every target works on a fresh machine with Go 1.26.
GO        ?= go
BIN       ?= bin
FUZZTIME  ?= 10s
STATICCHECK_VERSION ?= v0.8.2
BENCHSTAT_VERSION   ?= v0.0.0-20260908200009-22c9c6c9d4da

.PHONY: run build test fuzz lint bench clean

## run: start Herald on the embedded store with development credentials
run:
	$(GO) run ./cmd/herald serve --dev

## build: build the herald binary into bin/
build:
	$(GO) build -o $(BIN)/herald ./cmd/herald

## test: every test with the race detector (PostgreSQL tests start a throwaway cluster), then short fuzz runs
test:
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz

## fuzz: short fuzz runs of request decoding, validation, authentication and client frames
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzCreateRequest$$' -fuzztime $(FUZZTIME) ./api/
	$(GO) test -run '^$$' -fuzz '^FuzzAuthenticate$$' -fuzztime $(FUZZTIME) ./api/auth/
	$(GO) test -run '^$$' -fuzz '^FuzzParseClientFrame$$' -fuzztime $(FUZZTIME) ./api/ws/
	$(GO) test -run '^$$' -fuzz '^FuzzNotificationJSON$$' -fuzztime $(FUZZTIME) .

## lint: gofmt, go vet and staticcheck (installed from the Go module proxy if missing)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...

## bench: stored notifications/s through the persistence actor, on PostgreSQL (fsync on)
## and the embedded store; six runs each, summarised by benchstat (medians)
bench:
	@mkdir -p .bench
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 10x -count 6 ./actors/persist/ ./persistence/... | tee .bench/latest.txt
	@command -v benchstat >/dev/null 2>&1 || $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" benchstat .bench/latest.txt

clean:
	rm -rf $(BIN)
