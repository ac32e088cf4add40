# The two commands of the README: `make start` and `make test`.
# Both install missing Debian packages (scripts/deps.sh), configure and build.

BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: start test build deps test-deps configure bench clean format

start: build
	$(BUILD)/minik start $(ARGS)

test: test-deps build
	cd $(BUILD) && ctest --output-on-failure --timeout 900 $(CTEST_ARGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

configure: deps
	@[ -f $(BUILD)/CMakeCache.txt ] || cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh --test

bench: test-deps build
	test/bench/run.sh $(BUILD)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD)
