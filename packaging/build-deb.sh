#!/usr/bin/env bash
# Builds dist/station_<version>_<arch>.deb (see packaging/README.md): the station and its Python
# dependencies installed with pip --target into /opt/station/lib, for this release's
# /usr/bin/python3, plus /usr/bin/station, the systemd units, the desktop entry and icon, the
# example configuration and the maintainer scripts. `make package` runs it.
#
#   PACKAGE_WORK  build folder (default packaging/build; emptied first)
#   PACKAGE_OUT   output folder (default dist)
set -euo pipefail
umask 022
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

python=/usr/bin/python3  # the release's own Python: the package depends on its minor version
work=$(realpath -m "${PACKAGE_WORK:-packaging/build}")
out=$(realpath -m "${PACKAGE_OUT:-dist}")

version=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' station/__init__.py)
[ -n "$version" ] || { echo "build-deb: no __version__ in station/__init__.py" >&2; exit 1; }
arch=$(dpkg --print-architecture)
pyminor=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
pynext=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1] + 1}")')

# Where this release's systemd keeps the units packages ship: /lib/systemd/system on Debian 12,
# /usr/lib/systemd/system from Debian 13 on.
unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
if [ -z "$unitdir" ]; then
  unitdir=$(dpkg -L systemd 2>/dev/null | sed -n 's|^\(.*/systemd/system\)/[^/]*\.service$|\1|p' \
    | head -n1)
fi
unitdir=${unitdir:-/usr/lib/systemd/system}

echo "build-deb: station $version for $arch, python3 $pyminor, units in $unitdir"
rm -rf "$work"
mkdir -p "$work" "$out"
stage=$work/root
lib=$stage/opt/station/lib

# A copy of the sources: the wheel build writes build/ and *.egg-info next to them.
mkdir -p "$work/src"
shopt -s nullglob
tar -c --exclude=__pycache__ --exclude='*.pyc' pyproject.toml README.md LICENSE* station \
  | tar -x -C "$work/src"
shopt -u nullglob

# A throwaway venv of the release's Python, only for its pip.
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --no-compile --no-warn-script-location \
  --target "$lib" "$work/src"

# Console scripts name the throwaway venv's python: /usr/bin/station replaces them. pip's record
# of where the station came from names the build folder.
rm -rf "$lib/bin"
rm -f "$lib"/station-*.dist-info/direct_url.json
find "$lib" -type d -name __pycache__ -prune -exec rm -rf {} +
find "$lib" -type d \( -path '*/numpy/*/tests' -o -path '*/numpy/tests' \) -prune -exec rm -rf {} +
# Qt WebEngine (a Chromium, 260 MB of the 760): the station never shows a web page.
find "$lib/PySide6" -iname '*webengine*' -prune -exec rm -rf {} +
leaks=$(grep -rlF -e "$root" "$lib" || true)
if [ -n "$leaks" ]; then
  echo "build-deb: these files name the build folder $root:" >&2
  echo "$leaks" | head -n 10 >&2
  exit 1
fi
[ -f "$lib/station/profiles/adult.toml" ] || { echo "build-deb: profiles missing" >&2; exit 1; }

install -D -m 0755 packaging/bin/station "$stage/usr/bin/station"
install -D -m 0644 -t "$stage/usr/share/station/examples" config/station.example.toml \
  config/mosquitto-*.conf config/mosquitto-acl.example
install -D -m 0644 packaging/station.desktop "$stage/usr/share/applications/station.desktop"
install -D -m 0644 packaging/station.svg "$stage/usr/share/icons/hicolor/scalable/apps/station.svg"
install -D -m 0644 -t "$stage$unitdir" packaging/systemd/station.service \
  packaging/systemd/station-kiosk.service
install -D -m 0644 packaging/debian/copyright "$stage/usr/share/doc/station/copyright"
install -D -m 0644 packaging/README.md "$stage/usr/share/doc/station/README.packaging.md"

# The oldest glibc any bundled wheel was built for (manylinux_2_NN).
glibc=$("$python" - "$lib" <<'EOF'
import pathlib, re, sys
tags = (p.read_text() for p in pathlib.Path(sys.argv[1]).glob("*.dist-info/WHEEL"))
found = [tuple(map(int, m)) for t in tags for m in re.findall(r"manylinux_(\d+)_(\d+)", t)]
print("%d.%d" % max(found, default=(2, 17)))
EOF
)

chmod -R u+rwX,go+rX,go-w "$stage"
mkdir -p "$stage/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm \
  "$stage/DEBIAN/"
size=$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" \
  -e "s/@PYTHON_DEPENDS@/python3 (>= $pyminor), python3 (<< $pynext)/" \
  -e "s/@LIBC_DEPENDS@/libc6 (>= $glibc)/" \
  packaging/debian/control.in >"$stage/DEBIAN/control"

deb=$out/station_${version}_${arch}.deb
# zstd at a low level: the Qt wheels are hundreds of MB and this is fast.
dpkg-deb --build --root-owner-group -Zzstd -z3 "$stage" "$deb"
echo "build-deb: $deb ($(du -h "$deb" | cut -f1))"
