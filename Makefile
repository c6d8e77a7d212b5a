# Llama-Triton: the README's two commands.
#   make run    set up, build, and tell a story with the embedded model
#   make test   set up, build, and run every test (C through ctest, then Python)
# Also: make build | asan | coverage | fuzz-smoke | fuzz | bench | format | clean

BUILD    ?= build
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
PYTHON   ?= /usr/bin/python3
DEB_PKGS := cmake make gcc g++ pkg-config libpcre2-dev python3 python3-pytest python3-pytest-timeout python3-numpy \
            python3-sentencepiece python3-setuptools python3-wheel python3-coverage gcovr \
            python3-torch python3-pip \
            libmicrohttpd-dev python3-httpx nodejs python3-jinja2 \
            chromium chromium-driver python3-selenium \
            clang libclang-rt-dev
CMAKE_FLAGS ?=
PROMPT   ?= Once upon a time

.PHONY: all deps build run test test-c test-python asan coverage fuzz-smoke fuzz bench format clean

all: build

# Installs missing Debian packages: apt-get when root, otherwise prints the exact command.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing" >&2; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >&2 || exit 1; \
	  else \
	    echo "missing Debian packages; run:" >&2; \
	    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$$missing" >&2; exit 1; \
	  fi; \
	fi

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >&2

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) >&2

# Builds only the library and the CLI (the test programs are for `make test`), then tells the
# story; --echo prints the prompt after the load line (stderr), so the story reads whole. With a
# GPU (or a build already there) the CLI is built in $(BUILD) with the CUDA backend; on a machine
# without a GPU, CPU-only in $(BUILD)-cli (compiling the CUDA backend takes minutes on 2 cores,
# and it could not run there).
HAVE_GPU = $(shell nvidia-smi -L 2>/dev/null | grep -q '^GPU' && echo 1)
RUN_BUILD = $(if $(or $(HAVE_GPU),$(wildcard $(BUILD)/CMakeCache.txt)),$(BUILD),$(BUILD)-cli)
run: deps
	@[ -f $(RUN_BUILD)/CMakeCache.txt ] || cmake -S . -B $(RUN_BUILD) -DCMAKE_BUILD_TYPE=Release \
	  $(if $(filter $(BUILD),$(RUN_BUILD)),,-DLLT_CUDA=OFF) $(CMAKE_FLAGS) >&2
	cmake --build $(RUN_BUILD) -j $(JOBS) --target llama-triton >&2
	@$(RUN_BUILD)/llama-triton models/stories260K.gguf -p "$(PROMPT)" --echo -n 200 --temperature 0.8 --seed 42

test: build
	@scripts/run-tests.sh $(BUILD) $(PYTHON)

# AddressSanitizer + UBSan build of the library and the C tests (damaged inputs included).
asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLLT_ASAN=ON -DLLT_CUDA=OFF >&2
	cmake --build build-asan -j $(JOBS) >&2
	ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j $(JOBS)
	@# the HTTP server under ASan + LSan: a leak or an error makes serve exit non-zero, which fails
	@# the test that stops it (the tests that need the Python binding's library are left out)
	ASAN_OPTIONS=detect_leaks=1 LLT_CLI=$(CURDIR)/build-asan/llama-triton $(PYTHON) -m pytest -q \
	  --timeout=300 -k "not by_definition" tests/python/test_serve.py tests/python/test_serve_errors.py

coverage: deps
	cmake -S . -B build-cov -DCMAKE_BUILD_TYPE=Debug -DLLT_COVERAGE=ON -DLLT_CUDA=OFF >&2
	cmake --build build-cov -j $(JOBS) >&2
	find build-cov -name '*.gcda' -delete
	ctest --test-dir build-cov -j $(JOBS) >&2 || true
	@# Python tests drive the C library too; with python3-coverage they also measure the package.
	@if $(PYTHON) -c 'import coverage' 2>/dev/null; then \
	  COVERAGE_FILE=$(CURDIR)/build-cov/python.coverage LLT_LIB=$(CURDIR)/build-cov/libllama_triton.so \
	    LLT_CLI=$(CURDIR)/build-cov/llama-triton $(PYTHON) -m coverage run --source=python/llama_triton \
	    -m pytest -q tests/python >&2 || true; \
	  COVERAGE_FILE=$(CURDIR)/build-cov/python.coverage $(PYTHON) -m coverage report >&2; \
	  COVERAGE_FILE=$(CURDIR)/build-cov/python.coverage $(PYTHON) -m coverage report | \
	    awk '$$1 == "TOTAL" { print "python/llama_triton lines: " $$NF " (" $$2 - $$3 " out of " $$2 ")" }'; \
	else \
	  LLT_LIB=$(CURDIR)/build-cov/libllama_triton.so LLT_CLI=$(CURDIR)/build-cov/llama-triton \
	    $(PYTHON) -m pytest -q tests/python >&2 || true; \
	  echo "python/llama_triton lines: not measured (install python3-coverage)"; \
	fi
	gcovr -r . --filter src/ build-cov --print-summary | tail -3

# libFuzzer targets listed in tests/fuzz/targets, one after the other (clang, ASan + UBSan):
# fuzz-smoke (CI) 30 s each, fuzz (the long run) 10 minutes each. A crash fails the run and
# leaves its reproducer in build-fuzz/crashes/<target>/.
fuzz-smoke: deps
	FUZZ_SECONDS=30 scripts/build-fuzz.sh

fuzz: deps
	FUZZ_SECONDS=$${FUZZ_SECONDS:-600} scripts/build-fuzz.sh

bench: build
	$(BUILD)/llama-triton bench models/stories260K.gguf --device cpu

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')

clean:
	rm -rf $(BUILD) $(BUILD)-cli build-asan build-cov build-fuzz
