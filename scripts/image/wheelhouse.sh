#!/usr/bin/env bash
# Fill the two wheel directories the image build installs from (no index, no network):
#   .cache/image/wheelhouse  every wheel requirements/runtime.lock pins: downloaded, checked
#                            against the lock's hashes, binary only, for the image's Python
#                            and architecture;
#   .cache/image/dist        l2agent's own wheel, built from this tree.
# Two directories, so a change to l2agent's code rebuilds only the image's last layers.
#
#   scripts/image/wheelhouse.sh [PYTHON]     PYTHON: the venv interpreter (default .venv/bin/python)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${1:-$repo/.venv/bin/python}
out=$repo/.cache/image/wheelhouse
dist=$repo/.cache/image/dist
# The image's Python (scripts/image/build.sh checks the base has this one).
py_version=${IMAGE_PYTHON_VERSION:-3.11}
arch=$(uname -m)
glibc=${IMAGE_GLIBC_MINOR:-36}   # bookworm's glibc 2.36
# pip takes the image's platform literally (it does not widen manylinux_2_36 to the older
# tags most wheels carry), so every tag a glibc 2.36 system accepts is listed.
platforms=()
for ((minor = glibc; minor >= 5; minor--)); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
platforms+=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch" --platform "manylinux1_$arch")

cd "$repo"
# The pinned wheels are fetched again only when the lock (or the target) changed.
stamp="$(sha256sum requirements/runtime.lock | cut -c1-64) $py_version ${platforms[*]}"
if [ "$(cat "$out/.stamp" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$out"
  mkdir -p "$out"
  "$python" -m pip download --quiet --disable-pip-version-check --require-hashes --no-deps \
      --only-binary=:all: --implementation cp --python-version "$py_version" \
      "${platforms[@]}" --dest "$out" -r requirements/runtime.lock
  echo "$stamp" >"$out/.stamp"
fi
rm -rf "$dist" build
mkdir -p "$dist"
# l2agent itself, with the build backend the dev lock pins (no build isolation: nothing
# fetched here that is not pinned). The wheel's timestamps come from the last commit, so an
# unchanged tree gives the same bytes and the image build reuses its cached layer.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 315532800)}
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    --wheel-dir "$dist" .
rm -rf build
echo "wheelhouse: $(ls "$out" | wc -l) pinned wheels, $(ls "$dist")" >&2
