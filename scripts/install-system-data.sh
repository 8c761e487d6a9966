#!/usr/bin/env bash
# Install the Debian data packages that ckptrank's built-in data sets read:
#   dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist
#   wordnet-base          -> /usr/share/wordnet/data.noun
# Does nothing when they are already present.
set -euo pipefail
need=()
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
[ -e /usr/share/wordnet/data.noun ] || need+=(wordnet-base)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian data packages: ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
