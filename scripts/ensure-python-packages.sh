#!/usr/bin/env bash
# Installs PyPI packages the tests use (e.g. qemu.qmp==0.0.6) into .build/python, the
# project's own folder, so that neither the system's Python (PEP 668 keeps pip out of it on
# Debian) nor the user's site-packages is touched. Tests put .build/python on PYTHONPATH.
#   scripts/ensure-python-packages.sh 'qemu.qmp==0.0.6' ...
set -euo pipefail
cd "$(dirname "$0")/.."
target=.build/python
stamp="$target/.installed-$(echo "$*" | md5sum | cut -c1-12)"
[[ -e $stamp ]] && exit 0
if ! python3 -m pip --version >/dev/null 2>&1; then
  scripts/ensure-packages.sh python3-pip
fi
echo "installing into $target: $*" >&2
mkdir -p "$target"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --target "$target" "$@" >&2
touch "$stamp"
