#!/usr/bin/env bash
# nats_secure.sh: the nats_secure ctest fixture: throwaway keys and certificates, and five
# nats-servers on 127.0.0.1 (free ports) that require TLS and credentials, for the security tests.
#   nats_secure.sh start NATS_SERVER KEYS_TOOL DIR   makes DIR/pki, DIR/secrets, DIR/creds,
#                                                     DIR/nkey, then starts the servers below
#   nats_secure.sh stop DIR                           stops them by their PIDs, removes DIR
# KEYS_TOOL is nats_test_keys (nats_test_keys.cpp): it encodes the NKeys and signs the JWTs.
#
# DIR/pki (openssl; EC P-256; valid for two days unless said otherwise):
#   ca.pem                 the CA every server and client certificate below is signed by
#   other-ca.pem           another CA, which signed nothing the servers trust
#   server.pem, -key.pem   the servers' certificate: subjectAltName IP:127.0.0.1 only
#   expired-server.pem     like server.pem, but valid only on 2020-01-01
#   client.pem, -key.pem   a client certificate (clientAuth) signed by ca.pem
#   expired-client.pem     the same, valid only on 2020-01-01
#   rogue-client.pem       a client certificate signed by other-ca.pem
# DIR/secrets: random passwords (alice, bob, carol) and a token, one per file (mode 600).
# Servers, each in DIR/<name>/ with url, monitor (its HTTP monitoring endpoint: /varz counts
# every connection it accepted), pid, server.log and server.conf:
#   auth     TLS required; users with passwords: alice (may do anything), bob (may not publish to
#            secret.>, to $JS.API.STREAM.INFO.LOCKED (the lookup of stream LOCKED) nor to
#            $JS.API.CONSUMER.MSG.NEXT.*.denied (a fetch through a consumer named "denied"), may not
#            subscribe to secret.>), carol (may not subscribe to _INBOX.>, where replies come),
#            and the NKey user of DIR/nkey; JetStream
#   token    TLS required; the token of DIR/secrets/token; JetStream
#   mtls     TLS required with a client certificate signed by ca.pem (verify: true); JetStream
#   jwt      TLS required; decentralized auth: an operator, a system account and an account with
#            JetStream preloaded in a memory resolver; DIR/creds/user.creds connects,
#            expired.creds (JWT expired) and rogue.creds (unknown account) do not
#   expired  TLS with expired-server.pem; no authentication
# The servers must never outlive the test run: see nats_server.sh (same watchdog, same cleanup).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
servers=(auth token mtls jwt expired)

make_pki() {
  local pki=$1
  mkdir -p "$pki/issued"
  cd "$pki"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
  openssl req -x509 "${ec[@]}" -keyout ca-key.pem -out ca.pem -days 2 \
    -subj "/CN=pushstage test CA" 2>/dev/null
  openssl req -x509 "${ec[@]}" -keyout other-ca-key.pem -out other-ca.pem -days 2 \
    -subj "/CN=pushstage other CA" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  # `openssl ca` sets validity dates in the past, which `openssl x509 -req` cannot.
  cat >ca.cnf <<EOF
[ca]
default_ca = test
[test]
database = $pki/index.txt
new_certs_dir = $pki/issued
serial = $pki/serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
EOF
  : >index.txt
  echo 1000 >serial
  # name CN EXTFILE CA [expired]
  issue() {
    local name=$1 cn=$2 ext=$3 ca=$4 expired=${5:-}
    openssl req "${ec[@]}" -keyout "$name-key.pem" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
    if [[ -n "$expired" ]]; then
      openssl ca -batch -config ca.cnf -cert "$ca.pem" -keyfile "$ca-key.pem" -in "$name.csr" \
        -out "$name.pem" -extfile "$ext" -notext \
        -startdate 20200101000000Z -enddate 20200102000000Z 2>/dev/null
    else
      openssl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca-key.pem" -CAcreateserial \
        -out "$name.pem" -days 2 -extfile "$ext" 2>/dev/null
    fi
  }
  issue server "pushstage test server" server.ext ca
  issue expired-server "pushstage test server" server.ext ca expired
  issue client "pushstage test client" client.ext ca
  issue expired-client "pushstage test client" client.ext ca expired
  issue rogue-client "pushstage rogue client" client.ext other-ca
  chmod 600 ./*-key.pem
  cd - >/dev/null
}

# The raw Ed25519 seed and public key of each JWT/NKey identity, for nats_test_keys.
make_keys() {
  local dir=$1 tool=$2 name key seed public
  mkdir -p "$dir/keys"
  for name in operator system account rogue_account user rogue_user nkey_user; do
    key=$dir/keys/$name.pem
    openssl genpkey -algorithm ed25519 -out "$key" 2>/dev/null
    # The DER encodings end with the 32 raw bytes (PKCS#8 seed, SubjectPublicKeyInfo key).
    seed=$(openssl pkey -in "$key" -outform DER | tail -c 32 | od -An -v -tx1 | tr -d ' \n')
    public=$(openssl pkey -in "$key" -pubout -outform DER | tail -c 32 | od -An -v -tx1 | tr -d ' \n')
    echo "$seed $public" >"$dir/keys/$name.hex"
  done
  "$tool" "$dir"
}

make_secrets() {
  local dir=$1 name
  mkdir -p "$dir/secrets"
  for name in alice bob carol token; do
    openssl rand -hex 16 >"$dir/secrets/$name"
    chmod 600 "$dir/secrets/$name"
  done
}

# The tls block of a server: CERT (a name in pki/) and, for mutual TLS, "verify".
tls_block() {
  local pki=$1 cert=$2 verify=${3:-}
  cat <<EOF
tls {
  cert_file: "$pki/$cert.pem"
  key_file: "$pki/$cert-key.pem"
  ca_file: "$pki/ca.pem"
  timeout: 5
$([[ -n "$verify" ]] && echo "  verify: true")
}
EOF
}

write_configs() {
  local dir=$1 pki=$1/pki name
  for name in "${servers[@]}"; do
    mkdir -p "$dir/$name/store"
    {
      echo 'listen: 127.0.0.1:-1'
      echo 'http: 127.0.0.1:-1'
      [[ $name != expired ]] && echo "jetstream { store_dir: \"$dir/$name/store\" }"
    } >"$dir/$name/server.conf"
  done
  {
    tls_block "$pki" server
    cat <<EOF
authorization {
  users = [
    { user: alice, password: "$(cat "$dir/secrets/alice")" }
    { user: bob, password: "$(cat "$dir/secrets/bob")", permissions: {
        publish: { deny: ["secret.>", "\$JS.API.STREAM.INFO.LOCKED",
                          "\$JS.API.CONSUMER.MSG.NEXT.*.denied"] }
        subscribe: { deny: ["secret.>"] } } }
    { user: carol, password: "$(cat "$dir/secrets/carol")", permissions: {
        subscribe: { deny: ["_INBOX.>"] } } }
    { nkey: $(cat "$dir/nkey/user.pub") }
  ]
}
EOF
  } >>"$dir/auth/server.conf"
  {
    tls_block "$pki" server
    echo "authorization { token: \"$(cat "$dir/secrets/token")\" }"
  } >>"$dir/token/server.conf"
  tls_block "$pki" server verify >>"$dir/mtls/server.conf"
  {
    tls_block "$pki" server
    cat <<EOF
operator: "$dir/jwt/operator.jwt"
system_account: $(cat "$dir/jwt/system.pub")
resolver: MEMORY
resolver_preload: {
  $(cat "$dir/jwt/system.pub"): "$(cat "$dir/jwt/system.jwt")"
  $(cat "$dir/jwt/account.pub"): "$(cat "$dir/jwt/account.jwt")"
}
EOF
  } >>"$dir/jwt/server.conf"
  tls_block "$pki" expired-server >>"$dir/expired/server.conf"
  chmod 600 "$dir"/*/server.conf
}

start() {
  local server=$1 tool=$2 dir=$3 name
  stop "$dir" >/dev/null 2>&1 || true  # whatever an interrupted run left
  rm -rf "$dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  make_pki "$dir/pki"
  make_keys "$dir" "$tool"
  make_secrets "$dir"
  write_configs "$dir"
  # ctest runs this script: the servers' watchdogs watch ctest, not this short-lived shell.
  export PUSHSTAGE_NATS_OWNER=$PPID
  for name in "${servers[@]}"; do
    bash "$here/nats_server.sh" start-config "$server" "$dir/$name/server.conf" "$dir/$name"
  done
}

stop() {
  local dir=$1 name
  for name in "${servers[@]}"; do
    if [[ -d "$dir/$name" ]]; then bash "$here/nats_server.sh" stop "$dir/$name"; fi
  done
  rm -rf "$dir"
}

case "${1:-}" in
  start) start "$2" "$3" "$4" ;;
  stop) stop "$2" ;;
  *) echo "usage: nats_secure.sh start NATS_SERVER KEYS_TOOL DIR | stop DIR" >&2; exit 2 ;;
esac
