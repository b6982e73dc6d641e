#!/usr/bin/env bash
# Optional CI step (issue 8): install the Label Studio server into its own virtual environment so that
# tests/annotate/test_label_studio.py runs against a real server instead of being skipped.
# label-studio 1.23.2 pins pyarrow<25 (and more), so it must not share rmforge's environment.
# rmforge finds it at the default path below; for another path export RMFORGE_LABEL_STUDIO_BIN.
# The first test run migrates a database into ~/.cache/rmforge/label-studio-testdb (~1-1.5 min on 2 cores);
# keep that folder (and the venv, ~1 GB, ~2 min to install) in the CI cache: tests/annotate then takes ~30-35 s.
set -euo pipefail
VENV="${RMFORGE_LABEL_STUDIO_VENV:-$HOME/.cache/rmforge/label-studio-venv}"
VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
if ! "$VENV/bin/label-studio" --help >/dev/null 2>&1; then
  python -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "label-studio==$VERSION"
fi
echo "label-studio $VERSION: $VENV/bin/label-studio"
