#!/usr/bin/env bash
# `make image`: build localhost/l2agent:dev and localhost/l2agent-frr:dev with podman, on one
# Debian base made with mmdebstrap, with no container registry and no network in the build.
#
#   scripts/image/build.sh         (as root; the Debian base is cached by content key)
#
# Provenance, recorded on each image as labels (`podman image inspect`): the base image and
# the mmdebstrap recipe it was made from, the sha256 of requirements/runtime.lock (also
# copied into the image as /opt/l2agent/runtime.lock) and the git revision of the tree.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
podman=scripts/image/podman
image=${IMAGE:-localhost/l2agent:dev}
frr_image=${FRR_IMAGE:-localhost/l2agent-frr:dev}
python=${PYTHON:-$repo/.venv/bin/python}

start=$SECONDS
old_image=$("$podman" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
old_frr_image=$("$podman" image inspect --format '{{.Id}}' "$frr_image" 2>/dev/null || true)
base=$(scripts/image/base.sh)
# (pip's warnings about this machine's own index settings are not ours to show)
scripts/image/wheelhouse.sh "$python" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2)

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || revision="$revision-dirty"
labels=(
  --label "org.opencontainers.image.revision=$revision"
  --label "org.opencontainers.image.licenses=Apache-2.0"
)
"$podman" build --quiet --pull=never --network=none --layers \
  -f deploy/Dockerfile --build-arg "BASE_IMAGE=$base" \
  "${labels[@]}" \
  --label "org.opencontainers.image.base.name=$base" \
  --label "io.l2agent.lock.sha256=$(sha256sum requirements/runtime.lock | cut -c1-64)" \
  --tag "$image" . >/dev/null
"$podman" build --quiet --pull=never --network=none --layers \
  -f deploy/Dockerfile.frr --build-arg "BASE_IMAGE=$base" \
  "${labels[@]}" \
  --label "org.opencontainers.image.base.name=$base" \
  --tag "$frr_image" "$(mktemp -d -p .cache/image)" >/dev/null
# The images this build replaced (their layers only; the build stages' layers stay as the
# cache of the next build). This store is the checkout's own: nobody else's images are here.
for pair in "$image=$old_image" "$frr_image=$old_frr_image"; do
  name=${pair%%=*} old=${pair#*=}
  new=$("$podman" image inspect --format '{{.Id}}' "$name")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then "$podman" rmi "$old" >/dev/null 2>&1 || true; fi
done
echo "image: $image, $frr_image built in $((SECONDS - start)) s" >&2
"$podman" images --filter "reference=$image" >&2
"$podman" images --noheading --filter "reference=$frr_image" >&2
