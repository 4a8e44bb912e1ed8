#!/usr/bin/env bash
# Installs the system packages C2S Studio needs to build, test and run, idempotently.
# Debian/Ubuntu: apt packages; CMake >= 3.26 (for the static HDF5 build) from PyPI if the
# system one is older. Safe to run again: it only installs what is missing.
set -euo pipefail

need_apt=()
for pkg in build-essential pkg-config libssl-dev libvulkan1 mesa-vulkan-drivers libxkbcommon-x11-0 libx11-xcb1 libxcursor1 libxrandr2 libxi6 libwayland-client0 libegl1 xvfb; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

cmake_ok() {
  command -v cmake >/dev/null 2>&1 || return 1
  local v; v=$(cmake --version | head -n1 | awk '{print $3}')
  [ "$(printf '%s\n3.26\n' "$v" | sort -V | head -n1)" = "3.26" ]
}
if ! cmake_ok; then
  echo "setup: installing CMake >= 3.26 from PyPI (needed to build HDF5)"
  python3 -m pip install --quiet --user "cmake>=3.26" 2>/dev/null || python3 -m pip install --quiet "cmake>=3.26"
  export PATH="$HOME/.local/bin:$PATH"
  hash -r
  cmake_ok || { echo "setup: CMake >= 3.26 not found after install" >&2; exit 1; }
fi
