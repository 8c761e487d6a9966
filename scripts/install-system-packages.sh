#!/usr/bin/env bash
# Install the Debian packages ckptrank's built-in data sets and report tests need:
#   dataset-fashion-mnist -> /usr/share/datasets/fashion-mnist   (built-in image data)
#   wordnet-base          -> /usr/share/wordnet/data.noun         (built-in text data)
#   chromium              -> /usr/bin/chromium                    (renders the bench report in tests)
# Does nothing when they are already present. Pass --data-only to skip chromium.
set -euo pipefail
need=()
[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
[ -e /usr/share/wordnet/data.noun ] || need+=(wordnet-base)
if [ "${1:-}" != "--data-only" ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
