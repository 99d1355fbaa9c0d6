#!/usr/bin/env bash
# Installs the system programs the test suite uses as real peers (SIPp, a PostgreSQL server for the
# records tests: tools/pgserver.py, a Redis server for the location store tests: tools/redisserver.py), the
# headless browser of the wallboard test (Chromium) and two desktop softphones that register and take queued
# calls in tests/integration/test_real_phones.py (baresip, linphonec) and Kamailio (with its TLS module) as a
# trunk's provider or carrier, when missing and root.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
[ -x /usr/bin/chromium ] || need+=(chromium)
# Debian keeps initdb/pg_ctl off PATH, in /usr/lib/postgresql/N/bin
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
# baresip-core: the program and its modules (aufile, ausine, g711) without the GTK/X11/FFmpeg front-ends
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
command -v linphonec >/dev/null 2>&1 || need+=(linphone-cli)
# Kamailio: the SIP provider (registrar with digest auth, OPTIONS peer) a trunk registers to in tests/integration
command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || need+=(kamailio)
# its tls module: Kamailio as a carrier over TLS for the trunks' outbound TLS tests
compgen -G '/usr/lib/*/kamailio/modules/tls.so' >/dev/null || need+=(kamailio-tls-modules)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
    echo "missing: ${need[*]} (run as root, or install them with your package manager)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "installed: ${need[*]}"
