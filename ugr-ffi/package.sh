#!/usr/bin/env bash
# Builds libugr and lays it out for C and C++ builds:
#
#   PREFIX/include/{ugr.h, ugr.hpp}
#   PREFIX/lib/libugr.so.X.Y.Z (+ SONAME and dev symlinks), PREFIX/lib/libugr.a
#   PREFIX/lib/pkgconfig/ugr.pc
#   PREFIX/lib/cmake/ugr/{ugrConfig.cmake, ugrConfigVersion.cmake}   (targets ugr::ugr, ugr::ugr_static)
#
# Usage: bash ugr-ffi/package.sh [--prefix DIR] [--profile release|dev] [--prebuilt] [--keep-debug]
#   --prefix      default: target/libugr
#   --profile     cargo profile (default release)
#   --prebuilt    package the libraries already in target/<profile dir> instead of building
#                 (CI links them with `cargo build --workspace --lib --tests` right after
#                 `cargo test --workspace`; building ugr-ffi alone would compile tract again
#                 with a different feature set). The system
#                 libraries for static links are then those of Rust's std, read from rustc:
#                 libugr has no native dependency of its own.
#   --keep-debug  keep debug info (by default the libraries are stripped of it)
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=target/libugr
profile=release
keep_debug=0
prebuilt=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --keep-debug) keep_debug=1; shift ;;
    --prebuilt) prebuilt=1; shift ;;
    *) echo "package.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$profile" in
  dev) outdir=debug ;;
  *) outdir=$profile ;;
esac

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
if [ "$major" = 0 ]; then soname="libugr.so.0.$minor"; else soname="libugr.so.$major"; fi

# The build prints the system libraries a static link needs (only when it links, hence the
# second try after touching the crate root).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
native_libs() {
  cargo rustc --profile "$profile" -p ugr-ffi --lib --locked -- --print native-static-libs > "$log" 2>&1 ||
    { cat "$log" >&2; exit 1; }
  sed -n 's/.*native-static-libs: //p' "$log" | tail -1
}
if [ "$prebuilt" = 1 ]; then
  for f in libugr.so libugr.a; do
    [ -f "target/$outdir/$f" ] || { echo "package.sh: --prebuilt but target/$outdir/$f is missing" >&2; exit 1; }
  done
  echo '' > "$log.rs"
  native=$(rustc --crate-type staticlib --crate-name ugr_native_probe --print native-static-libs \
    -o "$log.a" "$log.rs" 2>&1 | sed -n 's/.*native-static-libs: //p' | tail -1)
  rm -f "$log.rs" "$log.a"
else
  native=$(native_libs)
fi
if [ -z "$native" ]; then
  touch ugr-ffi/src/lib.rs
  native=$(native_libs)
fi
[ -n "$native" ] || { cat "$log" >&2; echo "package.sh: could not read native-static-libs" >&2; exit 1; }

mkdir -p "$prefix/include" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/ugr"
prefix=$(cd "$prefix" && pwd)
cp include/ugr.h include/ugr.hpp "$prefix/include/"
rm -f "$prefix"/lib/libugr.so* "$prefix/lib/libugr.a"
cp "target/$outdir/libugr.so" "$prefix/lib/libugr.so.$version"
cp "target/$outdir/libugr.a" "$prefix/lib/libugr.a"
if [ "$keep_debug" = 0 ]; then
  strip --strip-debug "$prefix/lib/libugr.so.$version" "$prefix/lib/libugr.a"
fi
ln -s "libugr.so.$version" "$prefix/lib/$soname"
ln -s "$soname" "$prefix/lib/libugr.so"

native_cmake=$(echo "$native" | tr ' ' ';')
subst() {
  sed -e "s|@VERSION@|$version|g" -e "s|@MAJOR@|$major|g" -e "s|@MINOR@|$minor|g" \
      -e "s|@SONAME@|$soname|g" -e "s|@PREFIX@|$prefix|g" \
      -e "s|@NATIVE_LIBS@|$native|g" -e "s|@NATIVE_LIBS_CMAKE@|$native_cmake|g" "$1" > "$2"
}
subst ugr-ffi/cmake/ugrConfig.cmake.in "$prefix/lib/cmake/ugr/ugrConfig.cmake"
subst ugr-ffi/cmake/ugrConfigVersion.cmake.in "$prefix/lib/cmake/ugr/ugrConfigVersion.cmake"
subst ugr-ffi/pkgconfig/ugr.pc.in "$prefix/lib/pkgconfig/ugr.pc"

echo "libugr $version ($profile) in $prefix:"
ls -la "$prefix/lib"
