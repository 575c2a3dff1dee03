# goro - thin front end over CMake/Ninja. `make` only builds: when a Debian
# package is missing it says which and how to install it (`make deps`).
# check, bench and demo install what they need first (as root), or print
# the apt-get line to run.
#
#   make         build the library, tests (when cmocka is installed),
#                benchmarks and examples into build/
#   make deps    install every package make, make check and make demo need
#   make check   tests: plain (gcc), clang -Werror build, ASan+UBSan (gcc), TSan (clang),
#                chaos plain and TSan (concurrency groups), valgrind (a subset),
#                60 s of libFuzzer on the HTTP parser (clang); see docs/testing.md
#   make bench   goro benchmarks against their Go twins, medians and ratios
#   make demo    the story: a goroutine leak reproduced, found and fixed (demo-out/)
#   make clean   remove build trees

.PHONY: all build deps check bench demo clean

all: build

build:
	@scripts/deps.sh --check build
	@cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build

deps:
	@scripts/deps.sh build check demo

check:
	@scripts/deps.sh build check
	@scripts/check.sh

bench:
	@scripts/deps.sh build bench
	@$(MAKE) --no-print-directory build
	@bench/run.sh

# Only what the story needs (no clang, cmocka or valgrind): a fresh machine
# gets to the demo quickly. scripts/demo.sh builds the two programs it runs.
demo:
	@scripts/deps.sh demo
	@scripts/demo.sh

clean:
	rm -rf build build-* demo-out
