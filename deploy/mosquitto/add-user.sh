#!/bin/sh
# Add or update a broker user in a Mosquitto password file: a gateway id in gateways.passwd,
# hazwatch-cloud in cloud.passwd (mosquitto.conf gives each listener its own file).
# Usage: add-user.sh PASSWD_FILE USERNAME [PASSWORD]   (a random password is made and printed
# when none is given; give it to the gateway's [mqtt] config once, it is not stored in clear).
# User names follow wire.check_gateway_id: 1-64 letters, digits, '_', '.', '-', starting with a
# letter or digit. So no user name contains ':', which cloud worker client ids do.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 PASSWD_FILE USERNAME [PASSWORD]" >&2
    exit 2
fi
file=$1
user=$2
password=${3:-$(openssl rand -base64 24)}
ok=0
case $user in
    *[!A-Za-z0-9_.-]*) ;;
    [A-Za-z0-9]*) ok=$(( ${#user} <= 64 )) ;;
esac
if [ "$ok" -ne 1 ]; then
    echo "bad username '$user': 1-64 letters, digits, _ . -, starting with a letter or digit" >&2
    exit 2
fi
if [ -f "$file" ]; then
    mosquitto_passwd -b "$file" "$user" "$password"
else
    touch "$file"
    chmod 600 "$file"
    mosquitto_passwd -b "$file" "$user" "$password"
fi
if [ $# -lt 3 ]; then
    echo "$password"
fi
