# The two commands of the README:
#   make demo   - install what is missing, build, and run the product's main job
#   make test   - install what is missing, build, and run the test suite with ctest
# Also: make build, make image, make test-asan, make test-tsan, make fuzz, make bench, make soak.

.PHONY: demo test build image test-asan test-tsan bench fuzz soak clean

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

build:
	bash scripts/build.sh build

# The container image, with docker or (no engine needed) buildah; see scripts/image.sh.
image:
	bash scripts/image.sh

# Sanitizer builds run the native tests; chart/manifest checks (deploy), the API lint (api) and
# the benchmark smoke test exercise no native code of ours that the plain run does not already cover. The
# randomized no-bleed test runs 20,000 exchanges instead of 100,000 (ASan is ~5x slower).
test-asan:
	TEST_STAGE=asan BUILD_DIR=build-asan CMAKE_EXTRA="-DTLSB_ASAN=ON -DTLSB_BUILD_BENCHMARKS=OFF" TEST_EXCLUDE_LABEL="deploy|bench|api" \
	  TLSB_SOAK_EXCHANGES=20000 LSAN_OPTIONS="suppressions=$(CURDIR)/scripts/lsan-suppressions.txt" \
	  bash scripts/test.sh

# ThreadSanitizer on the core's tests only: Debian's gRPC and Abseil are not built for TSan.
test-tsan:
	TEST_STAGE=tsan BUILD_DIR=build-tsan CMAKE_EXTRA="-DTLSB_TSAN=ON -DTLSB_BUILD_BENCHMARKS=OFF" BUILD_TARGET="tlsb_tests_broker tlsb_tests_fuzz" TEST_LABEL="broker|fuzz" \
	  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/scripts/tsan-suppressions.txt" \
	  bash scripts/test.sh

bench:
	bash scripts/bench.sh

# libFuzzer (clang): each target for FUZZ_SECONDS (default 20) seconds.
fuzz:
	bash scripts/fuzz.sh

# The real broker under load while its backend restarts and its CRL, credentials and config are
# reloaded; fails if RSS, fds or sockets grow. SOAK_SECONDS (default 180) sets the length.
soak:
	bash scripts/soak.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz
