#!/usr/bin/env bash
# Fails when a header that a C module under Sources/C*/ includes (directly or through other headers), or a library
# that a module links, comes from a Debian package that the project's install list (APT_PACKAGES in the Makefile)
# does not name, directly or as a dependency. A machine that already has such a package (from an earlier install)
# builds fine, but a fresh one does not: this check makes that visible on any machine.
#
#   tools/check-install-list.sh                         # the Makefile's list
#   IE_INSTALL_LIST="libpng-dev ..." tools/check-install-list.sh   # another list (the tests use it to see it fail)
#
# Allowed besides the list's dependency closure: Swift's documented Debian 12 prerequisites (the "Swift is
# installed" state the README starts from) and their closure, and files of the Swift toolchain itself (no package).
set -euo pipefail
cd "$(dirname "$0")/.."

list=${IE_INSTALL_LIST:-$(make -s --no-print-directory print-apt-packages)}
swift_prerequisites="binutils git gnupg2 libc6-dev libcurl4-openssl-dev libedit2 libgcc-12-dev libpython3-dev
libsqlite3-0 libstdc++-12-dev libxml2-dev libz3-dev pkg-config tzdata zlib1g-dev libncurses6"

# The dependency closure of installed packages (Depends and Pre-Depends; alternatives all count; virtual packages
# resolved to the installed packages that provide them). One dpkg-query reads every installed package's fields.
declare -A depends=() providers=()
while IFS=$'\t' read -r pkg deps provides; do
  depends[$pkg]=$deps
  for virtual in $(echo "$provides" | tr ',' '\n' | sed -E 's/\(.*\)//; s/ //g'); do
    providers[$virtual]="${providers[$virtual]:-} $pkg"
  done
done < <(dpkg-query -W -f='${Package}\t${Depends},${Pre-Depends}\t${Provides}\n')
declare -A allowed=()
closure() {
  local queue=("$@") pkg dep
  while [ ${#queue[@]} -gt 0 ]; do
    pkg=${queue[0]%%:*}; queue=("${queue[@]:1}")
    [ -n "$pkg" ] && [ -z "${allowed[$pkg]:-}" ] || continue
    allowed[$pkg]=1
    if [ -z "${depends[$pkg]+set}" ]; then
      # shellcheck disable=SC2206
      queue+=(${providers[$pkg]:-})   # not installed under this name: a virtual package's providers
      continue
    fi
    for dep in $(echo "${depends[$pkg]}" | tr ',|' '\n\n' | sed -E 's/\(.*\)//; s/:any//; s/^ +//; s/ +$//' | grep -v '^$'); do
      queue+=("$dep")
    done
  done
}
# shellcheck disable=SC2086
closure $list $swift_prerequisites

cflags_for() {
  case "$1" in
    CMPI) pkg-config --cflags ompi-c 2>/dev/null || true ;;
    *) ;;
  esac
}

failures=0
checked=0
entries=()   # "module|what|path" of every header and library to check
add_file() {
  case "$3" in "$PWD"/*|/opt/swift/*) return 0 ;; esac
  entries+=("$1|$2|$3")
}
for dir in Sources/C*/; do
  module=$(basename "$dir")
  [ -f "$dir/module.modulemap" ] || continue
  if [ -f "$dir/shim.h" ]; then
    # shellcheck disable=SC2046
    if ! deps=$(clang -M -x c "$dir/shim.h" $(cflags_for "$module") 2>&1); then
      echo "check-install-list: $module: its headers do not preprocess: $(echo "$deps" | grep -m1 error)"
      failures=$((failures + 1)); continue
    fi
    for header in $(echo "$deps" | tr ' \\' '\n\n' | grep '^/' | sort -u); do
      add_file "$module" header "$(realpath -s "$header")"
    done
  fi
  for lib in $(sed -n 's/.*link "\([^"]*\)".*/\1/p' "$dir/module.modulemap"); do
    found=""
    for candidate in /usr/lib/x86_64-linux-gnu/lib$lib.so /usr/lib/lib$lib.so \
                     $(ls /usr/lib/gcc/x86_64-linux-gnu/*/lib$lib.so 2>/dev/null); do
      [ -e "$candidate" ] && { found=$candidate; break; }
    done
    if [ -z "$found" ]; then
      echo "check-install-list: $module: library lib$lib.so not found"; failures=$((failures + 1)); continue
    fi
    add_file "$module" library "$found"
  done
done
# Owners, from dpkg's file lists in one pass (dpkg -S per file takes minutes). dpkg knows the path a package
# shipped; alternatives symlinks and merged /usr make a header reachable under other names, so the literal path,
# its real path and the real path without /usr are all looked up.
declare -A owner=()
candidates() { local real; real=$(realpath "$1"); printf '%s\n%s\n' "$1" "$real"; case "$real" in /usr/lib/*) echo "${real#/usr}" ;; esac; }
lookups=$(for entry in "${entries[@]}"; do candidates "${entry##*|}"; done | sort -u)
while IFS= read -r line; do
  list=${line%%.list:*}; path=${line#*.list:}
  pkg=$(basename "$list"); pkg=${pkg%%:*}   # libc6-dev:amd64.list -> libc6-dev
  owner[$path]=$pkg
done < <(grep -xF -f <(echo "$lookups") /var/lib/dpkg/info/*.list 2>/dev/null || true)

for entry in "${entries[@]}"; do
  module=${entry%%|*}; rest=${entry#*|}; what=${rest%%|*}; path=${rest#*|}
  checked=$((checked + 1))
  pkg=""
  for candidate in $(candidates "$path"); do [ -n "${owner[$candidate]:-}" ] && { pkg=${owner[$candidate]}; break; }; done
  if [ -z "$pkg" ]; then
    echo "check-install-list: $module: $what $path belongs to no Debian package (installed by hand?)"
    failures=$((failures + 1))
  elif [ -z "${allowed[$pkg]:-}" ]; then
    echo "check-install-list: $module: $what $path comes from Debian package '$pkg', which the install list does not name (directly or as a dependency)"
    failures=$((failures + 1))
  fi
done
if [ "$failures" -gt 0 ]; then
  echo "check-install-list: $failures file(s) come from packages missing in the install list (Makefile APT_PACKAGES)"
  exit 1
fi
echo "check-install-list: $checked headers and libraries of Sources/C*/ all come from the install list's packages"
