#!/bin/sh
# Runs in the image build, on the finished virtual environment: removes what l2agent never
# imports, and says what remains. bench/results/image.md has the measured sizes.
#
# - kubernetes/aio: the asyncio twin of the Kubernetes client (about 68 MB with its bytecode,
#   the largest directory in the image); l2agent uses the synchronous client only, and
#   nothing outside kubernetes/aio imports it (tests/image checks by importing every
#   module of l2agent in the image).
# - test suites shipped inside packages.
# The bytecode (__pycache__) stays: the root filesystem is read-only, so without it every
# start would compile the Kubernetes client anew (bench/results/image.md: start-up).
set -eu
venv=$1
site=$(echo "$venv"/lib/python3.*/site-packages)
before=$(du -sk "$venv" | cut -f1)
rm -rf "$site/kubernetes/aio"
find "$site" -mindepth 2 -maxdepth 2 -type d \( -name tests -o -name test \) \
    -exec rm -rf {} +
after=$(du -sk "$venv" | cut -f1)
echo "slim-venv: $venv $((before / 1024)) MB -> $((after / 1024)) MB; largest packages (MB):"
du -sm "$site"/* | sort -rn | head -n 6
