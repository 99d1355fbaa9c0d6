#!/usr/bin/env bash
# Vendor JsSIP 3.x (the browser SIP-over-WebSocket stack of the agent page) from the npm registry:
# fetches the package tarball into a temp dir with `npm pack`, copies dist/jssip.min.js and its LICENSE into
# softswitch/api/static/vendor/. The page loads only that file (no CDN). Re-run to update; commit the result.
# Not every 3.x tarball on npm carries the prebuilt browser bundle (3.13.x and 3.10.x-3.11.x ship lib/ only):
# 3.12.0 is the newest 3.x that has dist/jssip.min.js, hence the pin. Another version:
#   JSSIP_VERSION=3.12.0 tools/vendor_jssip.sh
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/softswitch/api/static/vendor"
spec="jssip@${JSSIP_VERSION:-3.12.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
command -v npm >/dev/null || { echo "npm is needed (apt-get install npm)" >&2; exit 1; }
( cd "$tmp" && npm pack --silent "$spec" >/dev/null )
tarball="$(ls "$tmp"/jssip-*.tgz)"
tar -xzf "$tarball" -C "$tmp"
pkg="$tmp/package"
[ -f "$pkg/dist/jssip.min.js" ] || { echo "no dist/jssip.min.js in the $spec tarball: pick a version that ships it" >&2; exit 1; }
version="$(node -p "require('$pkg/package.json').version" 2>/dev/null || sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$pkg/package.json" | head -1)"
case "$version" in 3.*) ;; *) echo "expected JsSIP 3.x, got $version" >&2; exit 1 ;; esac
mkdir -p "$dest"
cp "$pkg/dist/jssip.min.js" "$dest/jssip.min.js"
lic="$(ls "$pkg"/LICENSE* | head -1)"
cp "$lic" "$dest/jssip.LICENSE"
echo "JsSIP $version -> $dest/jssip.min.js ($(wc -c <"$dest/jssip.min.js") bytes)"
