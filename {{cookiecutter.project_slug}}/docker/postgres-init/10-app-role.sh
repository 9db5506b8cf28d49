#!/bin/sh
# Runs once, when the postgres data volume is new (the image runs every script here then).
# The app's own role: it owns the database `app` and may do anything in it, nothing else:
# not a superuser, no other database, no roles.
set -eu
psql --variable=ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  --set=app_password="$POSTGRES_APP_PASSWORD" <<'SQL'
CREATE ROLE app LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE app OWNER app;
REVOKE ALL ON DATABASE app FROM PUBLIC;
SQL
