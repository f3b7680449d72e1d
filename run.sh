#!/usr/bin/env bash
# The two commands of the README:
#   ./run.sh main   install (once) into .venv, then run the main job on built-in defaults
#   ./run.sh test   install (once) into .venv, then lint and run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

install() {
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    # shellcheck disable=SC1091
    . .venv/bin/activate
    if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
        echo "installing rlfoundry and its dependencies into .venv (about 2 minutes, once)..." >&2
        python -m pip install -q --upgrade pip
        # torch first and pinned: a looser pin would pull a multi-GB CUDA build.
        python -m pip install -q torch==2.13.0
        python -m pip install -q -e ".[dev,llm,feedback,bench,apps,beyond,tune,sweep]"
        touch .venv/.installed
        echo "installed; to use the rlfoundry command yourself: source .venv/bin/activate" >&2
    fi
}

browser() {
    # Debian's Chromium drives the feedback app's browser test (Playwright uses it, no download).
    if ! command -v chromium >/dev/null 2>&1; then
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            echo "installing Debian's chromium for the browser test (apt-get, once)..." >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
        else
            echo "note: chromium is not installed; the browser test will be skipped" >&2
        fi
    fi
}

case "${1:-}" in
    main)
        install
        shift
        rlfoundry quickstart "$@"
        ;;
    test)
        install
        browser
        shift
        ruff check .
        python -m pytest -q -n 2 --timeout 1200 "$@"
        ;;
    *)
        echo "usage: ./run.sh main|test" >&2
        exit 2
        ;;
esac
