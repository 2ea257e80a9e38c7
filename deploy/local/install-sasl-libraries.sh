#!/usr/bin/env bash
# Installs what the `oidc` and `kerberos` features link (libcurl, Cyrus
# SASL) from Debian's packages when pkg-config does not find them. The
# default build needs neither; CI builds the features too.
set -euo pipefail
if pkg-config --exists libcurl libsasl2; then
  exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends libcurl4-openssl-dev libsasl2-dev
