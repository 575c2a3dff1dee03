# goro - thin front end over CMake/Ninja. Every target installs the Debian
# packages it needs first (as root), or prints the apt-get line to run.
#
#   make         build the library, tests, benchmarks and examples into build/
#   make check   tests: plain (gcc), clang -Werror build, ASan+UBSan (gcc), TSan (clang),
#                chaos plain and TSan (concurrency groups), valgrind (a subset),
#                60 s of libFuzzer on the HTTP parser (clang); see docs/testing.md
#   make bench   goro benchmarks against their Go twins, medians and ratios
#   make demo    the story: a goroutine leak reproduced, found and fixed (demo-out/)
#   make clean   remove build trees

.PHONY: all build check bench demo clean

all: build

build:
	@scripts/deps.sh build
	@cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build

check:
	@scripts/deps.sh build check
	@scripts/check.sh

bench: build
	@scripts/deps.sh bench
	@bench/run.sh

# Only what the story needs (no clang, cmocka or valgrind): a fresh machine
# gets to the demo quickly. scripts/demo.sh builds the two programs it runs.
demo:
	@scripts/deps.sh demo
	@scripts/demo.sh

clean:
	rm -rf build build-* demo-out
