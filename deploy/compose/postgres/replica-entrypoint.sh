#!/bin/sh
# The replica: on first start, clone the primary with pg_basebackup (-R
# writes standby.signal and primary_conninfo), then run as a hot standby.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	until pg_isready -h "$PRIMARY_HOST" -U postgres >/dev/null 2>&1; do sleep 1; done
	PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h "$PRIMARY_HOST" -U replicator \
		-D "$PGDATA" -R -X stream -c fast
	chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on
