#!/usr/bin/env bash
# Rebuild the dashboard from the lock file into spane/api/static/ (committed), and
# stamp it with a hash of the sources (checked by tests/unit/test_dashboard_build.py).
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm run build
node scripts/stamp.mjs
