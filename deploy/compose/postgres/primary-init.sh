#!/bin/sh
# Runs once, when the primary's data directory is created (the official
# image's /docker-entrypoint-initdb.d): a replication role for the replica,
# and the application's role and database that pgone serves.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'replicator';
CREATE ROLE app LOGIN PASSWORD 'app';
CREATE DATABASE app OWNER app;
SQL
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
