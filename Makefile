# Entry points for people and CI. Everything else is CMake.
#   make run    install what is missing, build, start the daemon on its embedded default
#   make test   install what is missing (incl. test tools), build, run all tests, then again under ASan+UBSan
#   make bench  build and run the benchmarks (JSON on stdout)
#   make deb    build the Debian package (RelWithDebInfo) and print its path
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
CMAKE_FLAGS ?=

.PHONY: all setup setup-test build build-asan run test test-release test-asan bench deb format clean

all: build

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh --test

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: setup-test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMETRONOME_SANITIZE=ON -DMETRONOME_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	./$(BUILD)/src/metronome run $(ARGS)

test: setup-test test-release test-asan

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 900

# Each benchmark prints one JSON object (defaults: lateness 100 s, nanosleep_baseline 100 s, scale
# 60 s, footprint FOOTPRINT_SECONDS); docs/performance.md has the figures and the commands.
# bench/ha_scale.sh (issue 8: 10,000 feeds on PostgreSQL, 2 replicas) is not run here: it needs an
# idle machine; docs/performance.md has its command.
FOOTPRINT_SECONDS ?= 300
bench: build
	@for b in $(BUILD)/bench/*; do if [ -f "$$b" ] && [ -x "$$b" ]; then "$$b" || exit 1; fi; done
	@METRONOME_BIN=$(BUILD)/src/metronome bench/footprint.sh --seconds $(FOOTPRINT_SECONDS)

# cpack needs dpkg-dev (dpkg-shlibdeps), which the test set-up installs.
deb: setup-test
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@cd $(BUILD) && { cpack -G DEB >cpack.log 2>&1 || { cat cpack.log; exit 1; }; }
	@sed -n 's/^CPack: - package: \(.*\.deb\) generated\.$$/\1/p' $(BUILD)/cpack.log

format:
	@find src tests bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
