# meshhook-stats: `make run` to try it, `make test` to check it. See README.md.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test run stop status coverage bench fuzz format format-check clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DMESHHOOK_WERROR=ON $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@scripts/test.sh $(BUILD_DIR)

run: build
	@scripts/run.sh start $(BUILD_DIR)

stop:
	@scripts/run.sh stop $(BUILD_DIR)

status:
	@scripts/run.sh status $(BUILD_DIR)

coverage: deps
	@scripts/coverage.sh

bench: build
	@scripts/bench.sh $(BUILD_DIR)

fuzz: deps
	@scripts/fuzz.sh

format:
	find exporter bridge app tests bench -name '*.h' -o -name '*.cpp' | xargs clang-format -i

format-check:
	find exporter bridge app tests bench -name '*.h' -o -name '*.cpp' | xargs clang-format --dry-run --Werror

clean:
	rm -rf $(BUILD_DIR) build-coverage build-fuzz
