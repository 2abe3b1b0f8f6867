#!/usr/bin/env bash
# Builds the throwaway PKI that the tests use, with nothing but the openssl command line.
#
#   make_test_pki.sh OUTDIR
#
# OUTDIR/ec (ECDSA P-256) and OUTDIR/rsa (RSA-2048) each get the same set of files; see the
# README.txt written next to them for the list. Leaf certificates carry an AIA OCSP URL only
# when OCSP_URL is set in the environment.
#
# Safe to run twice and to run concurrently (ctest may start it while a test binary that found
# no PKI builds its own): everything is built in a private temporary directory which is then
# renamed onto OUTDIR in one step, and OUTDIR/.complete marks a finished PKI.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1
# Bump when the set or shape of the files changes, so PKIs left in build directories by an
# older version of this script are rebuilt instead of silently reused.
format=3
is_current() { [ "$(cat "$1/.complete" 2>/dev/null)" = "format $format" ]; }
if is_current "$out"; then
  exit 0
fi

parent=$(dirname -- "$out")
mkdir -p -- "$parent"
parent=$(cd -- "$parent" && pwd)
out="$parent/$(basename -- "$out")"
work=$(mktemp -d "$parent/.test-pki.XXXXXX")
cleanup() { rm -rf -- "$work"; }
trap cleanup EXIT

ocsp_url=${OCSP_URL:-}
log=/dev/null  # each build_alg run sets its own

# Runs openssl quietly; on failure shows what it said, so a broken PKI is easy to diagnose.
ossl() {
  if ! openssl "$@" >>"$log" 2>&1; then
    echo "make_test_pki: openssl $1 failed:" >&2
    tail -n 20 "$log" >&2
    return 1
  fi
}

new_key() {  # ALG FILE
  if [ "$1" = ec ]; then
    ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$2"
  else
    ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$2"
  fi || return 1
  chmod 600 "$2"
}

# An `openssl ca` database. The config names its directory relatively ("./int-db"), so the
# database can be used from a copy of the PKI directory without writing into the original:
# run `openssl ca -config int-db/ca.cnf ...` from inside the algorithm directory.
# preserve = yes keeps each subject in the order the CSR gave it (by default `openssl ca`
# rewrites it in policy order); unique_subject = no lets the same DN be issued twice.
new_ca_db() {  # DIRNAME (relative to the current directory)
  local db=$1
  mkdir -p "$db/newcerts"
  : > "$db/index.txt"
  printf 'unique_subject = no\n' > "$db/index.txt.attr"
  printf '1000\n' > "$db/serial"
  printf '1000\n' > "$db/crlnumber"
  cat > "$db/ca.cnf" <<'CNF'
[ ca ]
default_ca = this_ca

[ this_ca ]
dir              = ./DBNAME
database         = $dir/index.txt
new_certs_dir    = $dir/newcerts
serial           = $dir/serial
crlnumber        = $dir/crlnumber
default_md       = sha256
default_days     = 825
default_crl_days = 30
policy           = any_subject
preserve         = yes
unique_subject   = no
email_in_dn      = no
copy_extensions  = none

[ any_subject ]
countryName            = optional
stateOrProvinceName    = optional
localityName           = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied

[ crl_ext ]
authorityKeyIdentifier = keyid:always
CNF
  sed -i "s|DBNAME|$db|" "$db/ca.cnf"
}

ca_extensions() {  # FILE PATHLEN-or-empty
  {
    if [ -n "$2" ]; then
      echo "basicConstraints = critical,CA:TRUE,pathlen:$2"
    else
      echo "basicConstraints = critical,CA:TRUE"
    fi
    echo "keyUsage = critical,keyCertSign,cRLSign"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid:always"
  } > "$1"
}

leaf_extensions() {  # ALG FILE EKU SAN-or-empty
  {
    echo "basicConstraints = critical,CA:FALSE"
    if [ "$1" = ec ]; then
      echo "keyUsage = critical,digitalSignature"
    else
      echo "keyUsage = critical,digitalSignature,keyEncipherment"
    fi
    echo "extendedKeyUsage = $3"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid,issuer"
    if [ -n "$ocsp_url" ]; then
      echo "authorityInfoAccess = OCSP;URI:$ocsp_url"
    fi
    if [ -n "$4" ]; then
      echo "subjectAltName = $4"
    fi
  } > "$2"
}

# Self-signed root with its own database (for the root CRL).
make_root() {  # ALG DBNAME KEY CRT SUBJECT
  new_ca_db "$2"
  ossl req -new -x509 -key "$3" -sha256 -days 3650 -out "$4" -subj "$5" \
    -addext "basicConstraints = critical,CA:TRUE" \
    -addext "keyUsage = critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier = hash"
}

# Issues NAME.crt from NAME.key, signed by the CA whose database is DB.
issue() {  # ALG DB CAKEY CACRT NAME SUBJECT EKU SAN [extra `openssl ca` args...]
  local alg=$1 db=$2 cakey=$3 cacrt=$4 name=$5 subj=$6 eku=$7 san=$8
  shift 8
  ossl req -new -key "$name.key" -out "$name.csr" -subj "$subj"
  leaf_extensions "$alg" "$name.ext" "$eku" "$san"
  ossl ca -batch -notext -config "$db/ca.cnf" -keyfile "$cakey" -cert "$cacrt" \
    -in "$name.csr" -out "$name.crt" -extfile "$name.ext" "$@"
  rm -f "$name.csr" "$name.ext"
}

server_san="DNS:localhost,IP:127.0.0.1,URI:spiffe://example.org/backend/qm2"
server_dn() { echo "/C=GB/O=Example/OU=WEBSPHERE/OU=IBM/CN=$1"; }
client_dn() { echo "/C=GB/O=Example/OU=payments/CN=$1"; }
client_san() { echo "URI:spiffe://example.org/ns/payments/sa/$1"; }

build_alg() {  # ALG
  local alg=$1
  local d="$work/$alg"
  log="$work/$alg.log"
  : > "$log"
  mkdir -p "$d/wrongca"
  cd "$d"

  # Keys first, two at a time: RSA key generation is most of the run time.
  local keys="root int server client client2 client-case expired-server expired-client
              notyet-server revoked-server revoked-client ocsp wrongca/root wrongca/server wrongca/client"
  local k
  for k in $keys; do echo "$k"; done |
    xargs -P 2 -I{} bash -c "$(declare -f ossl new_key); log='$log'; new_key '$alg' '{}.key'"

  # Root and intermediate (pathlen:0: the intermediate may sign only leaves).
  make_root "$alg" root-db root.key root.crt "/C=GB/O=Example/OU=Test PKI/CN=Example Test Root CA ($alg)"
  new_ca_db int-db
  ossl req -new -key int.key -out int.csr \
    -subj "/C=GB/O=Example/OU=Test PKI/CN=Example Test Intermediate CA ($alg)"
  ca_extensions int.ext 0
  ossl ca -batch -notext -config root-db/ca.cnf -keyfile root.key -cert root.crt \
    -in int.csr -out int.crt -extfile int.ext -days 3000
  rm -f int.csr int.ext
  cat int.crt root.crt > ca-chain.pem

  local ca=(int-db int.key int.crt)
  issue "$alg" "${ca[@]}" server "$(server_dn QM2.backend)" serverAuth "$server_san" -days 825
  issue "$alg" "${ca[@]}" client "$(client_dn app1)" clientAuth "$(client_san app1)" -days 825
  issue "$alg" "${ca[@]}" client2 "$(client_dn app2)" clientAuth "$(client_san app2)" -days 825
  # app1's SPIFFE ID with one path segment in another case: a different identity, which caller
  # patterns must not confuse with app1.
  issue "$alg" "${ca[@]}" client-case "$(client_dn app1-case)" clientAuth \
    "URI:spiffe://example.org/ns/PAYMENTS/sa/app1" -days 825
  issue "$alg" "${ca[@]}" expired-server "$(server_dn QM2.expired)" serverAuth "$server_san" \
    -startdate 20200101000000Z -enddate 20210101000000Z
  issue "$alg" "${ca[@]}" expired-client "$(client_dn expired)" clientAuth "$(client_san expired)" \
    -startdate 20200101000000Z -enddate 20210101000000Z
  issue "$alg" "${ca[@]}" notyet-server "$(server_dn QM2.notyet)" serverAuth "$server_san" \
    -startdate 20400101000000Z -enddate 20410101000000Z
  issue "$alg" "${ca[@]}" revoked-server "$(server_dn QM2.revoked)" serverAuth "$server_san" -days 825
  issue "$alg" "${ca[@]}" revoked-client "$(client_dn revoked)" clientAuth "$(client_san revoked)" -days 825
  issue "$alg" "${ca[@]}" ocsp "/C=GB/O=Example/OU=Test PKI/CN=Example Test OCSP Responder ($alg)" \
    OCSPSigning "" -days 825
  local n
  for n in server client client2 client-case expired-server expired-client notyet-server revoked-server revoked-client; do
    cat "$n.crt" int.crt > "$n.fullchain.pem"
  done

  # Client certificate as PKCS#12 too, for configs that take a bundle and a password file.
  printf 'test-p12-password' > client.p12.pass
  ossl pkcs12 -export -in client.crt -inkey client.key -certfile int.crt \
    -passout file:client.p12.pass -out client.p12
  # And the client key encrypted (PKCS#8, AES-256), for configs with key_password_file.
  printf 'test-key-password\n' > client.key.pass
  ossl pkey -in client.key -aes256 -passout file:client.key.pass -out client.enc.key

  # Revocations and CRLs. The root CRL is empty but lets -crl_check_all pass for good chains.
  ossl ca -config int-db/ca.cnf -keyfile int.key -cert int.crt -revoke revoked-server.crt \
    -crl_reason keyCompromise
  ossl ca -config int-db/ca.cnf -keyfile int.key -cert int.crt -revoke revoked-client.crt \
    -crl_reason keyCompromise
  ossl ca -gencrl -config int-db/ca.cnf -keyfile int.key -cert int.crt -crlexts crl_ext \
    -out int.crl.pem
  ossl ca -gencrl -config root-db/ca.cnf -keyfile root.key -cert root.crt -crlexts crl_ext \
    -out root.crl.pem
  ossl crl -in int.crl.pem -outform DER -out int.crl.der
  cat int.crl.pem root.crl.pem > crl-chain.pem
  mkdir -p crl-dir
  cp int.crl.pem root.crl.pem crl-dir/
  ossl rehash crl-dir

  # An unrelated CA, self-signed root issuing leaves directly, with the same names as the
  # real ones: a peer presenting these must fail only because of the issuer.
  cd wrongca
  make_root "$alg" root-db root.key root.crt "/C=GB/O=Example/OU=Test PKI/CN=Wrong Test Root CA ($alg)"
  issue "$alg" root-db root.key root.crt server "$(server_dn QM2.backend)" serverAuth "$server_san" -days 825
  issue "$alg" root-db root.key root.crt client "$(client_dn app1)" clientAuth "$(client_san app1)" -days 825
  cd "$d"
}

write_readme() {
  cat > "$work/README.txt" <<'TXT'
Test PKI made by tests/support/make_test_pki.sh. Throwaway keys: never use outside tests.

ec/ holds ECDSA P-256 keys, rsa/ RSA-2048 keys; both hold the same files:

  root.key root.crt              self-signed root CA
  int.key int.crt                intermediate CA issued by root (pathlen:0)
  ca-chain.pem                   int.crt + root.crt
  server.key server.crt          CN=QM2.backend,OU=IBM,OU=WEBSPHERE,O=Example,C=GB (RFC 2253)
                                 SAN DNS:localhost, IP:127.0.0.1, URI:spiffe://example.org/backend/qm2
  client.key client.crt          CN=app1,OU=payments,O=Example,C=GB
                                 SAN URI:spiffe://example.org/ns/payments/sa/app1
  client.p12 client.p12.pass     client key + cert + int as PKCS#12, and its password
  client.enc.key client.key.pass client.key encrypted (PKCS#8 AES-256), and its password
  client2.key client2.crt        CN=app2, SAN URI:spiffe://example.org/ns/payments/sa/app2
  client-case.key .crt           CN=app1-case, SAN URI:spiffe://example.org/ns/PAYMENTS/sa/app1
                                 (app1's ID but for the case of one path segment)
  expired-server.*               server names, valid 2020-01-01 .. 2021-01-01 (CN=QM2.expired)
  expired-client.*               client, valid 2020-01-01 .. 2021-01-01 (CN=expired)
  notyet-server.*                server names, valid 2040-01-01 .. 2041-01-01 (CN=QM2.notyet)
  revoked-server.*               server names, revoked (keyCompromise) (CN=QM2.revoked)
  revoked-client.*               client, revoked (keyCompromise) (CN=revoked)
  *.fullchain.pem                leaf + int.crt, for each server/client leaf above
  ocsp.key ocsp.crt              OCSP responder, issued by int (EKU OCSPSigning)
  int.crl.pem int.crl.der        the intermediate's CRL (lists both revoked-* certs)
  root.crl.pem                   the root's CRL (empty)
  crl-chain.pem                  int.crl.pem + root.crl.pem (for -crl_check_all)
  crl-dir/                       both CRLs with <hash>.r0 links (openssl rehash)
  int-db/ root-db/               `openssl ca` databases; int-db/index.txt serves
                                 `openssl ocsp -index int-db/index.txt -CA int.crt ...`.
                                 ca.cnf names its dir relatively: run openssl ca from here.
  wrongca/root.key root.crt      an unrelated self-signed root CA
  wrongca/server.key server.crt  same subject and SANs as server.crt, issued by wrongca root
  wrongca/client.key client.crt  same subject and SAN as client.crt, issued by wrongca root

Leaf certificates carry an AIA OCSP URL only if OCSP_URL was set when this was generated.
TXT
}

build_alg ec &
ec_pid=$!
build_alg rsa &
rsa_pid=$!
status=0
wait "$ec_pid" || status=1
wait "$rsa_pid" || status=1
if [ "$status" -ne 0 ]; then
  echo "make_test_pki: failed; see the openssl output above" >&2
  exit 1
fi
write_readme
rm -f "$work"/*.log
chmod 755 "$work"
echo "format $format" > "$work/.complete"

# Publish with one rename. rename(2) onto an existing non-empty directory fails, which is how
# a concurrent run that finished first wins; an unfinished or outdated OUTDIR is moved out of
# the way first.
for _ in 1 2 3 4 5; do
  if mv -T -- "$work" "$out" 2>/dev/null; then
    trap - EXIT
    exit 0
  fi
  if is_current "$out"; then
    exit 0
  fi
  stale=$(mktemp -d "$parent/.test-pki-stale.XXXXXX")
  if mv -T -- "$out" "$stale/old" 2>/dev/null; then
    rm -rf -- "$stale"
  else
    rmdir -- "$stale" 2>/dev/null || true
  fi
done
echo "make_test_pki: could not move the new PKI onto $out" >&2
exit 1
