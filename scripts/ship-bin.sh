#!/usr/bin/env bash
# Packs this machine's build (lmk, liblmkernels, the gtest binaries) into .ship/bin, so a device
# call can run it without building there (a build takes about 3 minutes of device time):
#   scripts/ship-bin.sh [BUILD=build]   then, on the device:  PREBUILT=.ship/bin scripts/device-check.sh
# device-check.sh checks that the binaries start there and builds from source if they do not
# (the two machines' images may differ).
#   scripts/ship-bin.sh BUILD NAME      packs only lmk + liblmkernels into .ship/NAME.tgz (about
#                                       20 MB) for scripts/ab-bench.sh NAME=.ship/NAME.tgz, so
#                                       several builds fit one call's 64 MiB
set -euo pipefail
BUILD=${1:-build}
cmake --build "$BUILD" >/dev/null
if [ $# -ge 2 ]; then
  tar czf ".ship/$2.tgz" -C "$BUILD" --dereference lmk liblmkernels.so.0
  du -sh ".ship/$2.tgz"
  exit 0
fi
DEST=.ship/bin
rm -rf "$DEST" && mkdir -p "$DEST/tests"
cp -L "$BUILD/lmk" "$BUILD"/liblmkernels.so.0 "$DEST/"
for t in "$BUILD"/tests/test_*; do [ -x "$t" ] && cp "$t" "$DEST/tests/"; done
du -sh "$DEST"
