#!/usr/bin/env bash
# The JVM tier of the local stack: Apache Kafka (KRaft) and Kafka Connect with Debezium's
# PostgreSQL connector, and Apicurio Registry (Confluent-compatible API), from Maven Central (versions pinned in infra/jvm/pom.xml), copied
# into the venv at $1/share/lakeport-jvm. Installs a JDK and Maven from Debian's packages when
# missing. Idempotent: a second run with the same pom downloads and copies nothing.
set -euo pipefail

VENV=${1:-.venv}
POM=infra/jvm/pom.xml
OUT="$VENV/share/lakeport-jvm"
STAMP="$OUT/.pom.sha256"

if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
    SUDO=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { echo "jvm-deps: not root and no sudo; install a JDK (17+) and Maven" >&2; exit 1; }
        SUDO=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" apt-get install -y --no-install-recommends default-jdk-headless maven
fi

want=$(sha256sum "$POM" | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi
rm -rf "$OUT"
mvn -q -B -Dstyle.color=never -f "$POM" -P kafka dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$PWD/$OUT/kafka"
mvn -q -B -Dstyle.color=never -f "$POM" -P debezium dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$PWD/$OUT/plugins/debezium-postgres"
mvn -q -B -Dstyle.color=never -f "$POM" -P avro-converter dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$PWD/$OUT/plugins/apicurio-avro-converter"
mvn -q -B -Dstyle.color=never -f "$POM" -P registry dependency:unpack-dependencies \
    -DoutputDirectory="$PWD/$OUT/registry" -DmarkersDirectory="$PWD/$OUT/.markers"
echo "$want" > "$STAMP"
echo "jvm-deps: $(ls "$OUT/kafka" | wc -l) Kafka jars, $(ls "$OUT/plugins/debezium-postgres" | wc -l) Debezium jars," \
     "Apicurio Registry in $OUT"
if ! ls /usr/lib/jvm/*/release >/dev/null 2>&1 || ! grep -qE 'JAVA_VERSION="(2[1-9]|[3-9][0-9])' /usr/lib/jvm/*/release; then
    echo "jvm-deps: note: Apicurio Registry needs Java 21 or newer, and none is under /usr/lib/jvm" >&2
fi
