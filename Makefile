# Thin wrapper around CMake.  `make run` and `make test` install what is
# missing (as root), build, and run the demo / every test.
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
DEMO ?= demo
CMAKE_FLAGS ?=

PREFIX ?= /usr/local

.PHONY: all build run test test-asan install bench deps-build deps-test clean

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
	@JOBS=$(JOBS) sh fuzz/fuzz.sh build-if-clang $(FUZZ_BUILD)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300
	$(MAKE) test-asan

# The whole suite again, built with ASan+UBSan (and LeakSanitizer) in
# $(ASAN_BUILD): README "Sanitizers", tests/sanitizer/.  Its last test,
# sanitizer_reports, fails if any report was written; the check after ctest
# catches a report written after it (a process that ended late).
$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DUCSPITLS_SANITIZE=ON $(CMAKE_FLAGS)

test-asan: deps-test $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	rm -rf $(ASAN_BUILD)/sanitizer-reports
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300
	python3 tests/sanitizer/check_reports.py $(ASAN_BUILD)/sanitizer-reports

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

bench: build
	@sh scripts/deps.sh bench
	bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

# External TLS scanners (sslscan, testssl.sh) against tlsserver's default
# configuration; reports in docs/scan/ (scripts/scan.sh; a few minutes).
.PHONY: scan
scan: build
	@sh scripts/deps.sh scan
	bash scripts/scan.sh $(BUILD) docs/scan

# libFuzzer targets (fuzz/fuzz_*.c), built with clang in $(FUZZ_BUILD) and
# each run FUZZ_TIME seconds from its seed corpus (fuzz/fuzz.sh: new inputs,
# logs and crashes stay in $(FUZZ_BUILD)); fails if any target crashes.
# `make test` builds them too when clang is there, for its fuzz-smoke tests.
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME ?= 60
FUZZ_TARGETS ?=
.PHONY: fuzz
fuzz:
	@sh scripts/deps.sh fuzz
	JOBS=$(JOBS) sh fuzz/fuzz.sh build $(FUZZ_BUILD)
	sh fuzz/fuzz.sh run $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_TARGETS)
