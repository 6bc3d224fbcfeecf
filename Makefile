# The two set-up commands of the README: `make run` (main job) and `make test` (test suite).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: configure build run test docs clean

configure:
	@command -v ccache >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && (apt-get update -qq && apt-get install -y -qq ccache) >/dev/null 2>&1 || true; }
	@test -f /usr/include/gtest/gtest.h || { (apt-get update -qq && apt-get install -y -qq libgtest-dev) >/dev/null 2>&1 || true; }
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -G "$(shell command -v ninja >/dev/null 2>&1 && echo Ninja || echo 'Unix Makefiles')" $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/lmk check
	$(BUILD)/lmk bench --quick

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

docs: build
	$(BUILD)/lmk ops --markdown --perf docs/perf-latest.tsv > docs/ops.md

clean:
	rm -rf $(BUILD)
