# gdpm: `make run` starts a development cluster, `make test` runs the tests.
GO      ?= go
BIN     ?= bin
BINARIES = gdpm-master gdpm-slave gdpm-client

.PHONY: all build install test test-short run vet fmt clean

all: vet test build

# build puts the three binaries in ./bin.
build:
	@mkdir -p $(BIN)
	$(foreach b,$(BINARIES),$(GO) build -o $(BIN)/$(b) ./examples/$(b) &&) true

# install puts the binaries in $GOBIN (or $GOPATH/bin), as the original did.
install:
	$(GO) install ./examples/...

# test is the command CI runs; e2e/ is a module of its own, which ./...
# does not reach.
test:
	$(GO) test -race -count=1 -timeout 30m ./... && (cd e2e && $(GO) test -race -count=1 -timeout 30m ./...)

test-short:
	$(GO) test -short -count=1 ./...

# run starts an all-in-one development cluster: embedded etcd, a master and
# one slave, API on http://127.0.0.1:8989.
run:
	$(GO) run ./examples/gdpm-master -dev

vet:
	$(GO) vet ./... && (cd e2e && $(GO) vet ./...)
	@test -z "$$(gofmt -l .)" || (gofmt -l . && false)

fmt:
	gofmt -w .

clean:
	rm -rf $(BIN)
