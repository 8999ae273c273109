#!/usr/bin/env bash
# MuJoCo renders headless through EGL (preferred) or OSMesa. Check that one of them is installed;
# on Debian as root install the Mesa packages, otherwise stop with the command that fixes it.
set -euo pipefail
have() { ldconfig -p 2>/dev/null | grep -q "$1"; }
if have libEGL.so.1 && have libGL.so.1 || have libOSMesa.so; then
  exit 0
fi
pkgs="libegl1 libgl1 libgl1-mesa-dri libegl-mesa0 libosmesa6"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "robo_rl: no headless OpenGL (EGL/OSMesa) found; installing: $pkgs"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
  exit 0
fi
echo "robo_rl: MuJoCo needs a headless OpenGL renderer (EGL or OSMesa) and none is installed." >&2
echo "Fix: sudo apt-get install $pkgs" >&2
exit 1
