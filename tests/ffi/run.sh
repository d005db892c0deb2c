#!/usr/bin/env bash
# Packages libugr (dev profile by default, to reuse the test build), then builds and runs the C
# and C++ tests (tests/ffi, ASan + LSan + UBSan, and once more under valgrind memcheck) and the
# C++ example (examples/cpp, linked both shared and static, also under valgrind). Needs cmake
# and g++ (`.ci/run` installs cmake) and valgrind (`.ci/run` installs it).
# Usage: bash tests/ffi/run.sh [--profile dev|release] [--prebuilt]
#   --prebuilt: test the libugr that `cargo test --workspace` just built (CI), see package.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=dev
pack=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile=$2; shift 2 ;;
    --prebuilt) pack+=(--prebuilt); shift ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
prefix=target/libugr-$profile
build=target/ffi-build-$profile

bash ugr-ffi/package.sh --profile "$profile" --prefix "$prefix" "${pack[@]}" > /dev/null
cmake -S tests/ffi -B "$build/tests" -DCMAKE_PREFIX_PATH="$PWD/$prefix" -DCMAKE_BUILD_TYPE=Debug > /dev/null
cmake --build "$build/tests" -j 2
(cd "$build/tests" && ctest --output-on-failure)

for link in shared static; do
  flag=OFF
  [ "$link" = static ] && flag=ON
  cmake -S examples/cpp -B "$build/example-$link" -DCMAKE_PREFIX_PATH="$PWD/$prefix" -DUGR_STATIC=$flag > /dev/null
  cmake --build "$build/example-$link" -j 2
  printf '1 2 3\n\n5 4000000000\n7 8\n' | "$build/example-$link/ugr_example" tests/data/tiny-model.ugr --k 3
  # The example under valgrind memcheck too (errors and definite leaks fail the run).
  if command -v valgrind > /dev/null; then
    printf '1 2 3\n7 8\n' | valgrind -q --error-exitcode=1 --leak-check=full \
      --errors-for-leak-kinds=definite,indirect "$build/example-$link/ugr_example" tests/data/tiny-model.ugr --k 3 > /dev/null
  fi
  # A static link with an executable-stack request would show RWE here.
  if readelf -lW "$build/example-$link/ugr_example" | grep GNU_STACK | grep -q RWE; then
    echo "ugr_example ($link) asks for an executable stack" >&2
    exit 1
  fi
done
echo "tests/ffi: all passed"
