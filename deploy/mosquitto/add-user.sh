#!/bin/sh
# Add or update a broker user (a gateway id, or hazwatch-cloud) in a Mosquitto password file.
# Usage: add-user.sh PASSWD_FILE USERNAME [PASSWORD]   (a random password is made and printed
# when none is given; give it to the gateway's [mqtt] config once, it is not stored in clear).
set -eu
if [ $# -lt 2 ]; then
    echo "usage: $0 PASSWD_FILE USERNAME [PASSWORD]" >&2
    exit 2
fi
file=$1
user=$2
password=${3:-$(openssl rand -base64 24)}
case $user in
    *[!A-Za-z0-9_.-]*|"") echo "bad username '$user': letters, digits, _ . - only" >&2; exit 2 ;;
esac
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
