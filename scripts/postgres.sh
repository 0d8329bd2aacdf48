#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 (trust auth), starting the local cluster if needed.
set -euo pipefail
ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
ready && exit 0
cluster=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
if [ -z "$cluster" ]; then
  echo "no PostgreSQL cluster found under /etc/postgresql" >&2
  exit 1
fi
if ! pg_lsclusters -h 2>/dev/null | awk '{print $2}' | grep -qx main; then
  pg_createcluster "$cluster" main >/dev/null
fi
conf=/etc/postgresql/$cluster/main
# Trust loopback connections, as the tests expect (a fresh cluster asks for passwords).
if ! grep -q "tocsin-test" "$conf/pg_hba.conf"; then
  sed -i '1i host all all 127.0.0.1/32 trust # tocsin-test\nhost all all ::1/128 trust # tocsin-test' "$conf/pg_hba.conf"
fi
pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
echo "PostgreSQL did not start" >&2
exit 1
