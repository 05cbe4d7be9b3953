#!/bin/sh
# Add or update a broker user in a Mosquitto password file: a gateway id in gateways.passwd,
# hazwatch-cloud in cloud.passwd (mosquitto.conf gives each listener its own file).
# Usage: add-user.sh PASSWD_FILE USERNAME [PASSWORD]   (a random password is made and printed
# when none is given; give it to the gateway's [mqtt] config once, it is not stored in clear).
# User names follow wire.check_gateway_id: 1-64 letters, digits, '_', '.', '-', starting with a
# letter or digit. So no user name contains ':', which cloud worker client ids do.
#
# The file is left owned by the caller (root, through sudo) and the broker's group, mode 0640:
# Mosquitto 2 started as root drops to the user "mosquitto" before it reads password files, so a
# root-only file stops it ("Error: Unable to open pwfile"); the broker can read this file but
# not change it, and nobody else can read it. MOSQUITTO_GROUP names another group for a broker
# that runs as another user; run by a user other than root (a broker started by that user, as in
# the tests) the default is that user's own group.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 PASSWD_FILE USERNAME [PASSWORD]" >&2
    exit 2
fi
file=$1
user=$2
password=${3:-$(openssl rand -base64 24)}
if [ "$(id -u)" -eq 0 ]; then
    group=${MOSQUITTO_GROUP:-mosquitto}
else
    group=${MOSQUITTO_GROUP:-$(id -gn)}
fi
ok=0
case $user in
    *[!A-Za-z0-9_.-]*) ;;
    [A-Za-z0-9]*) ok=$(( ${#user} <= 64 )) ;;
esac
if [ "$ok" -ne 1 ]; then
    echo "bad username '$user': 1-64 letters, digits, _ . -, starting with a letter or digit" >&2
    exit 2
fi
if ! getent group "$group" >/dev/null 2>&1; then
    echo "no group '$group': install mosquitto first, or name the broker's group in MOSQUITTO_GROUP" >&2
    exit 2
fi

# Readable by the owner and the broker's group only, from the first byte on.
umask 027
if [ ! -f "$file" ]; then
    : > "$file"
fi
chgrp "$group" "$file"
chmod 0640 "$file"
mosquitto_passwd -b "$file" "$user" "$password"
# Mosquitto 2.0.11 rewrites the file in place; should a version write a new file, restore both.
chgrp "$group" "$file"
chmod 0640 "$file"
if [ $# -lt 3 ]; then
    echo "$password"
fi
