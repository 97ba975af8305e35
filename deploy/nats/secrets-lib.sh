# Shared by deploy/compose/secrets.sh and deploy/k8s/secrets.sh (sourced,
# POSIX sh): the random values, the bcrypt hashes and the NATS passwords
# file both deployments make the same way.

fail() {
    echo "secrets.sh: $*" >&2
    exit 1
}

# 48 hex digits (192 random bits): no character that a shell, a .env file or
# nats-server's config parser would read specially.
random_hex() {
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# A bcrypt hash (cost 11) of the password on stdin, or nothing when no tool
# for it is installed. The password goes through stdin, never argv (ps).
bcrypt_hash() {
    if command -v htpasswd >/dev/null 2>&1; then
        htpasswd -inBC 11 "" 2>/dev/null | tr -d ':\n'
    elif command -v python3 >/dev/null 2>&1 && python3 -c 'import bcrypt' 2>/dev/null; then
        python3 -c 'import bcrypt, sys; sys.stdout.write(bcrypt.hashpw(sys.stdin.buffer.read().strip(), bcrypt.gensalt(11)).decode())'
    else
        cat >/dev/null
    fi
}

# write_nats_passwords FILE AUTH_CONF HEADER NO_BCRYPT_NOTE: once (FILE kept
# when it exists), one password per `user:` of AUTH_CONF under the name of
# the variable its `password:` reads: <VAR> for the client, <VAR>_SERVER
# (a bcrypt hash when a tool for it is installed) for nats-server. 0600.
write_nats_passwords() {
    file="$1" conf="$2" header="$3" note="$4"
    [ -s "$file" ] && return 0
    pairs="$(awk '
        /^[[:space:]]*user:/ { user = $2 }
        /^[[:space:]]*password:[[:space:]]*\$/ { var = $2; sub(/^\$/, "", var); print user, var }
    ' "$conf")"
    [ -n "$pairs" ] || fail "no user with a password: \$VAR line in $conf"
    {
        echo "$header"
        echo "# <VAR>: the password a client gives; <VAR>_SERVER: what nats-server gets for it."
        echo "$pairs" | while read -r user var; do
            pw="$(random_hex)"
            hash="$(printf '%s' "$pw" | bcrypt_hash)"
            case "$hash" in
                '$2'?'$'*) server="$hash" ;;
                *) server="$pw" ;;
            esac
            echo "# user $user"
            printf "%s='%s'\n" "$var" "$pw"
            printf "%s_SERVER='%s'\n" "$var" "$server"
        done
    } >"$file.tmp"
    mv "$file.tmp" "$file"
    chmod 600 "$file"
    if grep -q "_SERVER='\$2" "$file"; then
        echo "secrets.sh: new NATS passwords in $file (nats-server gets bcrypt hashes)" >&2
    else
        echo "secrets.sh: new NATS passwords in $file; no bcrypt tool (htpasswd, or python3 with bcrypt) was found, so nats-server gets the passwords themselves$note" >&2
    fi
}
