#!/usr/bin/env bash
# Install hear_suite and everything its tests, corpora and evaluation need, on a fresh machine.
# Idempotent: a second run installs nothing new. Needs root for the Debian packages (skipped,
# with a warning, without root or apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

DEBS="espeak-ng sox festival festvox-kallpc16k festvox-us-slt-hts fluidsynth fluid-soundfont-gm"
# real recordings of `hear-suite make-corpus real` (hear_suite/corpora/README.md lists each source)
DEBS="$DEBS klettres-data asterisk-core-sounds-en-wav asterisk-core-sounds-es-wav
  asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav
  asterisk-prompt-it-menardi-wav hydrogen-drumkits lmms-common musescore-general-soundfont-small
  colobot-common-sounds tuxpaint-data heroes-sound-effects moon-lander-data frozen-bubble-data
  pingus-data extremetuxracer-data oxygen-sounds deepin-sound-theme lomiri-sounds"
missing=$(dpkg-query -W -f='${Status} ${Package}\n' $DEBS 2>/dev/null | grep -c "ok installed" || true)
if [ "$missing" -ne "$(echo $DEBS | wc -w)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== apt-get install $DEBS"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $DEBS >/dev/null
  else
    echo "WARNING: cannot install Debian packages ($DEBS): corpus generation will be unavailable" >&2
  fi
fi

echo "== pip: torch (CPU build pinned first, so nothing pulls the multi-GB CUDA build)"
$PY -m pip install -q "torch==2.13.0"
echo "== pip: hear_suite (a real wheel, weights included) with test extras"
$PY -m pip install -q ".[test]"
echo "== pip: evaluation stack (heareval and hearvalidator with --no-deps, see requirements-eval.txt)"
$PY -m pip install -q -r requirements-eval.txt
$PY -m pip install -q --no-deps heareval==2021.1.3 hearvalidator==2021.0.2
