#!/bin/sh
# install_test.sh SRCDIR BUILDDIR SANITIZE - goro as an installed library:
# `cmake --install BUILDDIR --prefix TMP`, then the README's first program
# built with pkg-config (`cc -O2 prog.c $(pkg-config --cflags --libs goro)`)
# and with CMake's find_package(goro) + goro::goro, each run ("got 42").
# Then the prefix is moved: goro.pc finds its files from its own location.
# The consumer must not inherit -Werror. Exit 77 (skipped) in sanitizer
# builds: the installed library needs the sanitizer runtime.
set -eu
src=$1 build=$2 san=${3:-}
[ -z "$san" ] || { echo "install_test.sh: skipped in a sanitizer build ($san)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log"

# The README's first program, as the README prints it.
awk '/^## A first program/ {f=1; next} f && /^```c/ {p=1; next} p && /^```/ {exit} p' \
    "$src/README.md" >"$tmp/prog.c"
grep -q goro_run "$tmp/prog.c" || { echo "FAIL: no program found in README.md"; exit 1; }

pcdir=$(dirname "$(find "$tmp/prefix" -name goro.pc | head -1)")
[ -n "$pcdir" ] || { echo "FAIL: goro.pc not installed"; exit 1; }
flags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs goro)
echo "pkg-config: $flags"
case "$flags" in *"$tmp/prefix"*) ;; *) echo "FAIL: goro.pc does not point into the prefix"; exit 1 ;; esac
# shellcheck disable=SC2086
cc -O2 "$tmp/prog.c" $flags -o "$tmp/prog-pc"
out=$("$tmp/prog-pc")
[ "$out" = "got 42" ] || { echo "FAIL: pkg-config build printed '$out'"; exit 1; }
echo "ok   pkg-config build: $out"

mkdir -p "$tmp/app"
cp "$tmp/prog.c" "$tmp/app/prog.c"
cat >"$tmp/app/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(app C)
find_package(goro REQUIRED)
add_executable(app prog.c)
target_link_libraries(app PRIVATE goro::goro)
CM
cmake -S "$tmp/app" -B "$tmp/app/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$tmp/app.log"
cmake --build "$tmp/app/build" >>"$tmp/app.log"
out=$("$tmp/app/build/app")
[ "$out" = "got 42" ] || { echo "FAIL: find_package build printed '$out'"; exit 1; }
if grep -q -- "-Werror" "$tmp/app/build/compile_commands.json"; then
    echo "FAIL: goro's CMake package imposes -Werror on its consumer"; exit 1
fi
grep -q -- "-fno-optimize-sibling-calls" "$tmp/app/build/compile_commands.json" ||
    { echo "FAIL: the consumer lacks -fno-optimize-sibling-calls"; exit 1; }
echo "ok   find_package build: $out"

# Relocated: the same files under another directory.
mv "$tmp/prefix" "$tmp/moved"
flags=$(PKG_CONFIG_PATH=$(echo "$pcdir" | sed "s|$tmp/prefix|$tmp/moved|") pkg-config --cflags --libs goro)
# shellcheck disable=SC2086
cc -O2 "$tmp/prog.c" $flags -o "$tmp/prog-moved"
out=$("$tmp/prog-moved")
[ "$out" = "got 42" ] || { echo "FAIL: relocated pkg-config build printed '$out'"; exit 1; }
echo "ok   relocated prefix: $out"
