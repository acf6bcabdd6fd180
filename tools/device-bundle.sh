#!/bin/bash
# Packs what tools/device-check.sh needs on a lent device machine into .device/ie-device.tar.xz: the release tools
# it runs, the test bundle, and every shared library they load (glibc's loader included, so the bundle runs
# whatever the machine's distribution), stripped. Such a machine has no Swift, no Debian packages and no network;
# the `run` tool carries .device/ there beside the working tree (64 MiB in all: the bundle is about 40 MiB).
#
#   swift build -c release && swift build --build-tests && tools/device-bundle.sh
#   then, with the run tool: command "tools/device-check.sh", carry [".device"]
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="ie-synth ie-split ie-train ie-bench"
TESTS=.build/debug/ie-toolboxPackageTests.xctest
for t in $TOOLS; do
  [ -x ".build/release/$t" ] || { echo "device-bundle: .build/release/$t missing: swift build -c release" >&2; exit 1; }
done
[ -x "$TESTS" ] || { echo "device-bundle: $TESTS missing: swift build --build-tests" >&2; exit 1; }
command -v xz >/dev/null || { echo "device-bundle: xz missing: apt-get install xz-utils" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/ie-device/bin" "$stage/ie-device/lib"
for t in $TOOLS; do cp ".build/release/$t" "$stage/ie-device/bin/"; done
cp "$TESTS" "$stage/ie-device/bin/"
# Every library the binaries load, resolved as this machine resolves it, and the loader itself.
for b in "$stage"/ie-device/bin/*; do
  ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}'
done | sort -u | while read -r lib; do cp -L "$lib" "$stage/ie-device/lib/"; done
strip "$stage"/ie-device/bin/* "$stage"/ie-device/lib/*.so* 2>/dev/null || true
git rev-parse HEAD > "$stage/ie-device/COMMIT"
mkdir -p .device
tar -C "$stage" -cf - ie-device | xz -T2 -6 > .device/ie-device.tar.xz.tmp
mv .device/ie-device.tar.xz.tmp .device/ie-device.tar.xz
echo "device-bundle: .device/ie-device.tar.xz ($(du -h .device/ie-device.tar.xz | cut -f1), commit $(git rev-parse --short HEAD))"
