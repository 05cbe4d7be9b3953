#!/usr/bin/env bash
# Make sure Mosquitto (1883), Redis (6379) and PostgreSQL (5432, trust auth for 127.0.0.1,
# database `test`) answer on 127.0.0.1, as the tests expect.
#
# For each service: already answering -> nothing to do; installed but stopped -> start it with its
# usual command; missing -> install it with apt-get when running as root on Debian/Ubuntu;
# otherwise stop with a message naming what is missing and how to get it.
# Also installs the tools the tests drive: socat, openssl, mosquitto_passwd, Debian's chromium
# (the map page's browser tests; Playwright never downloads a browser of its own) and a CJK font
# (fonts-noto-cjk), so that the page's Chinese renders in it. And PostGIS for the server's major
# version (Debian's postgresql-15-postgis-3 for PostgreSQL 15), which the rules benchmark compares
# the engine against (bench/bench_rules_postgis.py); the extension is created by whoever uses it.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 100); do answers "$port" && return 0; sleep 0.1; done
  echo "services: $name did not come up on 127.0.0.1:$port" >&2
  return 1
}

APT_UPDATED=0
apt_install() {
  local sudo=()
  # Not root: sudo if it needs no password (a script must not stop for a prompt).
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  fi
  if { [ "$(id -u)" != 0 ] && [ ${#sudo[@]} = 0 ]; } || ! command -v apt-get >/dev/null 2>&1; then
    echo "services: $* missing; install it (Debian/Ubuntu: sudo apt-get install -y $*) or run this as root" >&2
    exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_tool() {  # ensure_tool BINARY PACKAGE
  command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

ensure_mosquitto() {
  answers 1883 && return 0
  ensure_tool mosquitto mosquitto
  echo "services: starting mosquitto"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
  else
    mosquitto -d -p 1883
  fi
  wait_for mosquitto 1883
}

ensure_redis() {
  answers 6379 && return 0
  ensure_tool redis-server redis-server
  echo "services: starting redis-server"
  mkdir -p /tmp/hazwatch-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/hazwatch-redis --logfile /tmp/hazwatch-redis/redis.log
  wait_for redis 6379
}

ensure_postgres() {
  if ! answers 5432; then
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
      apt_install postgresql
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    # Development and CI only: trust local TCP connections, as the tests expect.
    if [ -w "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
      sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    fi
    echo "services: starting postgresql $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    wait_for postgresql 5432
  fi
  if command -v psql >/dev/null 2>&1 \
    && ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc 'create database test'
  fi
}

# PostGIS for the running server's major version; the server sees a new extension without a
# restart. Skipped when psql is missing (the server was not installed from Debian's packages here).
ensure_postgis() {
  command -v psql >/dev/null 2>&1 || return 0
  local query="select 1 from pg_available_extensions where name='postgis'"
  psql -h 127.0.0.1 -U postgres -d postgres -tAc "$query" | grep -q 1 && return 0
  local major
  major=$(psql -h 127.0.0.1 -U postgres -d postgres -tAc 'show server_version_num')
  apt_install "postgresql-$((major / 10000))-postgis-3"
}

# Chinese labels of the map page render as empty boxes in headless chromium without a CJK font.
ensure_cjk_font() {
  command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh family)" ] && return 0
  apt_install fonts-noto-cjk
}

ensure_mosquitto
ensure_redis
ensure_postgres
ensure_postgis
ensure_tool socat socat
ensure_tool openssl openssl
ensure_tool mosquitto_passwd mosquitto
ensure_tool chromium chromium
ensure_cjk_font
echo "services: mosquitto 1883, redis 6379, postgresql 5432 answer on 127.0.0.1"
