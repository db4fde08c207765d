#!/usr/bin/env bash
# A throw-away MIT Kerberos realm on loopback: what the tests and `wsusfix demo --kerberos` use as
# the domain controller's KDC. Nothing system-wide is read or written by `start`: KRB5_CONFIG and
# KRB5_KDC_PROFILE point into DIR, the KDC listens on one loopback address only, and no host name
# is ever resolved (service principals are strings, the KDC is addressed by IP).
#
#   realm.sh install [--python-build]
#       Installs Debian's MIT Kerberos (krb5-kdc, krb5-admin-server, krb5-user) and faketime when
#       missing; --python-build adds libkrb5-dev and gcc, which pip needs to build python-gssapi,
#       krb5 and pykerberos. Runs `apt-get update` first, only when something is missing.
#   realm.sh start DIR [--realm R] [--kdc IP:PORT] [--user NAME] [--service SPN]...
#                      [--clock-offset OFFSET]
#       Creates the realm in DIR (from nothing: an earlier realm there is stopped and wiped), adds
#       the user (password from $REALM_PASSWORD, never from the command line) under its plain name
#       and as the enterprise name a UPN logon asks for, adds every --service principal (e.g.
#       HTTP/wsus-hq.lab.test) with a random key exported to DIR/services.keytab, and starts the
#       KDC (TCP and UDP). --clock-offset runs the KDC under faketime (e.g. +10m), for clock-skew
#       tests. Prints KEY=VALUE lines: REALM, KDC, KRB5_CONFIG, KEYTAB, KDC_LOG, PID.
#   realm.sh stop DIR
#       Stops the KDC that `start` started for DIR (by its pid file) and nothing else.
#
# Defaults: realm LAB.TEST, KDC 127.0.0.1:18888, user wsusfix.
set -euo pipefail

die() {
    echo "realm.sh: $*" >&2
    exit 1
}

tools_missing() {
    local missing=()
    for tool in krb5kdc kdb5_util kadmin.local kinit; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    echo "${missing[*]}"
}

install() {
    local packages=(krb5-kdc krb5-admin-server krb5-user faketime)
    if [[ "${1:-}" == "--python-build" ]]; then
        packages+=(libkrb5-dev gcc)
    fi
    local need=()
    for p in "${packages[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            need+=("$p")
        fi
    done
    if [[ ${#need[@]} -eq 0 ]]; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        die "needs root to install ${need[*]} (apt-get install ${need[*]})"
    fi
    echo "realm.sh: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # krb5-config's questions are answered with defaults; it writes an /etc/krb5.conf that the
    # realm never reads (KRB5_CONFIG points into DIR).
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need[@]}" >&2
}

stop() {
    local dir=$1
    if [[ -f "$dir/krb5kdc.pid" ]]; then
        local pid
        pid=$(cat "$dir/krb5kdc.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        rm -f "$dir/krb5kdc.pid"
    fi
}

start() {
    local dir=$1
    shift
    local realm=LAB.TEST kdc=127.0.0.1:18888 user=wsusfix offset=""
    local services=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            --realm) realm=$2; shift 2 ;;
            --kdc) kdc=$2; shift 2 ;;
            --user) user=$2; shift 2 ;;
            --service) services+=("$2"); shift 2 ;;
            --clock-offset) offset=$2; shift 2 ;;
            *) die "unknown option $1" ;;
        esac
    done
    [[ -n "${REALM_PASSWORD:-}" ]] || die "set REALM_PASSWORD to the user's password"
    case $REALM_PASSWORD in
        *'"'* | *$'\n'*) die "REALM_PASSWORD may not hold a double quote or a line break" ;;
    esac
    local missing
    missing=$(tools_missing)
    [[ -z "$missing" ]] || die "MIT Kerberos is not installed (missing: $missing); run: $0 install"
    if [[ -n "$offset" ]] && ! command -v faketime >/dev/null 2>&1; then
        die "--clock-offset needs faketime; run: $0 install"
    fi
    local kdc_ip=${kdc%:*} kdc_port=${kdc##*:}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    stop "$dir"
    rm -f "$dir"/principal* "$dir"/stash "$dir"/*.keytab "$dir"/kdc.log "$dir"/ccache
    local domain
    domain=$(echo "$realm" | tr '[:upper:]' '[:lower:]')

    cat > "$dir/krb5.conf" <<CONF
[libdefaults]
    default_realm = $realm
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    default_ccache_name = FILE:$dir/ccache
    default_keytab_name = FILE:$dir/services.keytab

[realms]
    $realm = {
        kdc = $kdc
    }

[domain_realm]
    .$domain = $realm
    $domain = $realm
CONF

    cat > "$dir/kdc.conf" <<CONF
[kdcdefaults]
    kdc_listen = $kdc
    kdc_tcp_listen = $kdc

[realms]
    $realm = {
        database_name = $dir/principal
        key_stash_file = $dir/stash
        acl_file = $dir/kadm5.acl
        max_life = 10h 0m 0s
        max_renewable_life = 7d 0h 0m 0s
        master_key_type = aes256-cts-hmac-sha1-96
        supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
        default_principal_flags = +preauth
    }

[logging]
    kdc = FILE:$dir/kdc.log
CONF
    : > "$dir/kadm5.acl"

    export KRB5_CONFIG=$dir/krb5.conf KRB5_KDC_PROFILE=$dir/kdc.conf
    kdb5_util create -s -r "$realm" -P "throw-away-master-key" >/dev/null 2>"$dir/kdb5_util.err" \
        || die "kdb5_util failed: $(cat "$dir/kdb5_util.err")"
    # One kadmin.local session for every principal; the password goes through stdin, never argv.
    # A UPN logon (user@REALM) is an NT-ENTERPRISE name: Active Directory resolves it to the
    # account, MIT looks up the literal name user\@REALM@REALM, so that name gets the password too.
    {
        echo "addprinc -pw \"$REALM_PASSWORD\" $user@$realm"
        echo "addprinc -pw \"$REALM_PASSWORD\" $user\\@$realm@$realm"
        for spn in "${services[@]}"; do
            echo "addprinc -randkey $spn@$realm"
            echo "ktadd -k $dir/services.keytab $spn@$realm"
        done
    } | kadmin.local -r "$realm" >/dev/null 2>"$dir/kadmin.err" \
        || die "kadmin.local failed: $(cat "$dir/kadmin.err")"
    if [[ ${#services[@]} -gt 0 ]]; then
        chmod 600 "$dir/services.keytab"
    fi

    local preload=""
    if [[ -n "$offset" ]]; then
        # libfaketime preloaded into the KDC itself (not the faketime wrapper, which would be the
        # process behind $! while the KDC runs as its child).
        preload=$(dpkg -L libfaketime 2>/dev/null | grep -m1 '/libfaketime.so.1$' || true)
        [[ -n "$preload" ]] || die "--clock-offset needs libfaketime; run: $0 install"
    fi
    # -n: the KDC stays in the foreground of its own process, so the pid is ours to stop. It
    # gets no descriptor of ours but its output (a test runner's lock file, for one, must not
    # outlive the test).
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if [[ $fd -gt 2 ]]; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        if [[ -n "$preload" ]]; then
            export LD_PRELOAD=$preload FAKETIME="$offset" FAKETIME_DONT_FAKE_MONOTONIC=1
        fi
        exec krb5kdc -n -r "$realm"
    ) < /dev/null > "$dir/krb5kdc.out" 2>&1 &
    local pid=$!
    echo "$pid" > "$dir/krb5kdc.pid"
    local up=""
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/$kdc_ip/$kdc_port") 2>/dev/null; then
            up=1
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    [[ -n "$up" ]] || die "the KDC did not start on $kdc: $(cat "$dir/krb5kdc.out" "$dir/kdc.log" 2>/dev/null | tail -5)"

    echo "REALM=$realm"
    echo "KDC=$kdc"
    echo "KRB5_CONFIG=$dir/krb5.conf"
    echo "KEYTAB=$dir/services.keytab"
    echo "KDC_LOG=$dir/kdc.log"
    echo "PID=$pid"
}

case "${1:-}" in
    install) shift; install "$@" ;;
    start) [[ $# -ge 2 ]] || die "usage: realm.sh start DIR [options]"; shift; start "$@" ;;
    stop) [[ $# -eq 2 ]] || die "usage: realm.sh stop DIR"; stop "$2" ;;
    *) die "usage: realm.sh install [--python-build] | start DIR [options] | stop DIR" ;;
esac
