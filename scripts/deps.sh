#!/bin/sh
# deps.sh [--check] SET... - make sure the Debian packages goro needs are
# installed.
#
# Sets: build (what `make` needs to compile the library, examples and
# benchmarks), check (`make check`: cmocka, clang, g++/clang++, valgrind,
# go tool pprof, which the profile tests use to read what goro writes),
# demo (make demo), bench (Go twins, wrk), all.
# As root, missing packages are installed with apt-get; otherwise the exact
# apt-get line is printed and the script fails. With --check nothing is
# ever installed: missing packages are listed with the command to install
# them (`make` uses this: it builds, it does not install). Nothing is
# installed that is already present, so running it again is cheap.
set -eu

check_only=0
if [ "${1:-}" = "--check" ]; then
    check_only=1
    shift
fi

# gcc's support library (libbacktrace.a, which goro links) is packaged per
# gcc major version: ask the gcc that is installed.
libgcc_dev() {
    if command -v gcc >/dev/null 2>&1; then
        echo "libgcc-$(gcc -dumpversion | cut -d. -f1)-dev"
    fi
}

pkgs_build="cmake ninja-build gcc libc6-dev $(libgcc_dev) pkg-config zlib1g-dev make"
pkgs_check="libcmocka-dev clang g++ valgrind golang-go curl"
# make demo: the library, the service and the load generator, and curl
pkgs_demo="cmake ninja-build gcc libc6-dev $(libgcc_dev) pkg-config zlib1g-dev make curl"
pkgs_bench="golang-go wrk"

want=""
for set in "$@"; do
    case "$set" in
        build) want="$want $pkgs_build" ;;
        check) want="$want $pkgs_check" ;;
        demo) want="$want $pkgs_demo" ;;
        bench) want="$want $pkgs_bench" ;;
        all) want="$want $pkgs_build $pkgs_check $pkgs_bench" ;;
        *) echo "deps.sh: unknown set '$set'" >&2; exit 2 ;;
    esac
done

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        case " $missing " in *" $p "*) ;; *) missing="$missing $p" ;; esac
    fi
done
[ -z "$missing" ] && exit 0

line="apt-get install -y --no-install-recommends$missing"
if [ "$check_only" -eq 1 ]; then
    echo "goro: missing Debian packages:$missing" >&2
    echo "  install them with \`make deps\` (as root), or: apt-get update && $line" >&2
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "goro: missing Debian packages. Run as root:" >&2
    echo "  apt-get update && $line" >&2
    exit 1
fi
echo "goro: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Refresh the package lists only when they are missing or a first attempt fails.
if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then apt-get update -q; fi
$line || { apt-get update -q && $line; }
