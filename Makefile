# Thin wrapper around CMake.  `make run` and `make test` install what is
# missing (as root), build, and run the demo / every test.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
DEMO ?= demo
CMAKE_FLAGS ?=

PREFIX ?= /usr/local

.PHONY: all build run test install bench deps-build deps-test clean

all: build

deps-build:
	@sh scripts/deps.sh build

deps-test:
	@sh scripts/deps.sh test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps-build $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@sh scripts/demo.sh $(BUILD) $(DEMO)

test: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

bench: build
	@sh scripts/deps.sh bench
	bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD)

# External TLS scanners (sslscan, testssl.sh) against tlsserver's default
# configuration; reports in docs/scan/ (scripts/scan.sh; a few minutes).
.PHONY: scan
scan: build
	@sh scripts/deps.sh scan
	bash scripts/scan.sh $(BUILD) docs/scan
