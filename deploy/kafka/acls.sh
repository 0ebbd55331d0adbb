#!/usr/bin/env bash
# The system's Kafka user and its ACLs, with Kafka's own tools (kafka-configs.sh,
# kafka-acls.sh), run with an admin's login: idempotent, run it before the topic job.
#
#   BOOTSTRAP=kafka-1:9092 ADMIN_CONFIG=/etc/baocao/admin.properties \
#   SYSTEM_USER=baocao SYSTEM_PASSWORD=... deploy/kafka/acls.sh
#
# The system's user may do everything on the system's own topics (reports.*, aggregates.*,
# hub.*) and consumer groups (baocao.*), and nothing else. Sources (the local systems) get
# no ACL here: `python -m services.submission sources create NAME --kafka` (or
# `sources kafka-access NAME`) gives each exactly two, write on reports.inbound.v1.NAME and
# read on reports.outcomes.v1.NAME, after its SCRAM user exists:
#
#   kafka-configs.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" \
#     --alter --entity-type users --entity-name NAME --add-config 'SCRAM-SHA-512=[password=...]'
set -euo pipefail
: "${BOOTSTRAP:?}" "${ADMIN_CONFIG:?}" "${SYSTEM_USER:?}" "${SYSTEM_PASSWORD:?}"
bin="${KAFKA_BIN:-/opt/kafka/bin}"
connect=(--bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG")

"$bin/kafka-configs.sh" "${connect[@]}" --alter --entity-type users \
  --entity-name "$SYSTEM_USER" --add-config "SCRAM-SHA-512=[password=${SYSTEM_PASSWORD}]"

for prefix in reports. aggregates. hub.; do
  "$bin/kafka-acls.sh" "${connect[@]}" --add --allow-principal "User:$SYSTEM_USER" \
    --operation All --topic "$prefix" --resource-pattern-type prefixed
done
"$bin/kafka-acls.sh" "${connect[@]}" --add --allow-principal "User:$SYSTEM_USER" \
  --operation All --group baocao. --resource-pattern-type prefixed
echo "acls: $SYSTEM_USER may use reports.*, aggregates.*, hub.* and groups baocao.*"
