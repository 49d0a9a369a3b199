#!/bin/bash
# testapp 1.3-migrates: changes the database, then fails (see the Dockerfile).
set -uo pipefail
v=1.3-migrates
echo "testapp $v starting"
if [ -z "${DATABASE_URL:-}" ]; then
  echo "testapp $v: no DATABASE_URL" >&2
  exit 2
fi
for ((i = 0; i < 60; i++)); do
  pg_isready -q -d "$DATABASE_URL" && break
  sleep 0.5
done
if ! psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 --single-transaction >/dev/null <<'SQL'; then
CREATE TABLE IF NOT EXISTS migrated_v13 (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO migrated_v13 VALUES (1, 'migrated by testapp 1.3') ON CONFLICT (id) DO NOTHING;
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = 'notes' AND column_name = 'body') THEN
    UPDATE notes SET body = 'migrated by 1.3';
  END IF;
END
$$;
SQL
  echo "testapp $v: migrating the database failed" >&2
  exit 2
fi
echo "testapp $v: database migrated"
echo "testapp $v: config error after migrating" >&2
exit 1
