"""A least-privilege database role for the API and the sweep: rows of the app's tables, and nothing else.

    DATABASE_URL=<the owner's direct URL> python -m ops.db_role [--role three_d_ultra_api] [--host HOST]
    DATABASE_URL=<the owner's direct URL> python -m ops.db_role --grants-only

Run it as the role migrations run as (the owner, `/3d-ultra/<stage>/database-url-direct`); it is idempotent:

- creates the role if it does not exist (LOGIN, and none of SUPERUSER, CREATEDB, CREATEROLE, REPLICATION,
  BYPASSRLS; a role that has any of them, or inherits from another role, is refused), and gives it a new random
  password (not with --grants-only);
- grants it CONNECT, USAGE on schema public, SELECT/INSERT/UPDATE/DELETE on every table there and USAGE/SELECT
  on its sequences; the same by default on what the owner creates there later (ALTER DEFAULT PRIVILEGES), so a
  later migration's table is covered without running this again; nothing on `schema_migrations` (created first
  if it is missing), no TRUNCATE, REFERENCES or TRIGGER, no CREATE anywhere: DDL is refused;
- prints the role's connection string on stdout (the owner's URL with this role, its password and the pooled
  host: Neon's `-pooler` endpoint unless --host names one), for `aws ssm put-parameter` to read; nothing else.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from urllib.parse import quote, urlsplit, urlunsplit

from chalicelib import repository
from chalicelib.config import DatabaseSettings
from chalicelib.db import Database

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DEFAULT_ROLE = "three_d_ultra_api"
DML = ("SELECT", "INSERT", "UPDATE", "DELETE")

# One statement, so one transaction: the values go in as transaction-local settings (a DO block takes no
# parameters), the body quotes them with format()'s %I and %L.
_APPLY = (
    "SELECT set_config('db_role.name', :role, true) IS NULL, set_config('db_role.password', :password, true) IS NULL;"
    " DO $db_role$"
    " DECLARE api_role name := current_setting('db_role.name'); owner_role name := current_user;"
    " BEGIN"
    "  IF api_role = owner_role THEN"
    "   RAISE EXCEPTION 'the API role must not be the owner role %', owner_role;"
    "  END IF;"
    "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = api_role) THEN"
    "   EXECUTE format('CREATE ROLE %I LOGIN', api_role);"
    "  END IF;"
    "  IF current_setting('db_role.password') <> '' THEN"
    "   EXECUTE format('ALTER ROLE %I WITH LOGIN PASSWORD %L', api_role, current_setting('db_role.password'));"
    "  END IF;"
    "  IF EXISTS (SELECT FROM pg_roles WHERE rolname = api_role"
    "             AND (rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls)) THEN"
    "   RAISE EXCEPTION 'role % can do more than change rows (superuser, createdb, createrole, replication or"
    " bypassrls): not a least-privilege role; choose another name', api_role;"
    "  END IF;"
    "  IF EXISTS (SELECT FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = api_role) THEN"
    "   RAISE EXCEPTION 'role % is a member of other roles and may use their privileges; choose another name',"
    " api_role;"
    "  END IF;"
    "  EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), api_role);"
    "  EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', api_role);"
    "  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', api_role);"
    "  EXECUTE format('REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM %I', api_role);"
    "  EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', api_role);"
    "  EXECUTE format('REVOKE ALL ON TABLE public.schema_migrations FROM %I', api_role);"
    "  EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public"
    " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', owner_role, api_role);"
    "  EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public"
    " GRANT USAGE, SELECT ON SEQUENCES TO %I', owner_role, api_role);"
    " END $db_role$"
)

# What the role may do afterwards, read back from the catalogue: per table of schema public, the privileges it
# holds; and whether it may create anything in the schema or the database.
_PRIVILEGES = (
    "SELECT c.relname, array_to_string(ARRAY(SELECT p FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE',"
    " 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p WHERE has_table_privilege(:role, c.oid, p)), ',')"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
)
_CREATE = ("SELECT has_schema_privilege(:role, 'public', 'CREATE'),"
           " has_database_privilege(:role, current_database(), 'CREATE')")


class RoleRefused(RuntimeError):
    """The role cannot be made least-privilege as asked."""


def pooled_host(host: str) -> str:
    """Neon's pooled endpoint for a direct one (`ep-x-123.region.aws.neon.tech` -> `ep-x-123-pooler...`)."""
    first, dot, rest = host.partition(".")
    if host.endswith(".neon.tech") and not first.endswith("-pooler"):
        return f"{first}-pooler{dot}{rest}"
    return host


def role_url(owner_url: str, role: str, password: str, host: str | None = None) -> str:
    """The owner's URL with `role`, `password` and `host` (default: the pooled one) in place of its own."""
    parts = urlsplit(owner_url)
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host or pooled_host(parts.hostname or '')}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def apply_role(db: Database, role: str, password: str = "") -> dict[str, list[str]]:
    """Create or update `role` as the owner connected through `db`; return its privileges per table."""
    if not ROLE_NAME.match(role):
        raise RoleRefused(f"{role!r} is not a plain role name (lower-case letters, digits, _)")
    repository.ensure_migrations_table(db)
    db.run(_APPLY, role=role, password=password)
    tables = {name: [p for p in privileges.split(",") if p] for name, privileges in db.run(_PRIVILEGES, role=role)}
    [[schema_create, database_create]] = db.run(_CREATE, role=role)
    if schema_create or database_create:
        raise RoleRefused(
            f"role {role} may create objects ({'in schema public' if schema_create else 'in the database'}), "
            "probably through PUBLIC (PostgreSQL before 15 grants CREATE on schema public to everyone): "
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC, then run this again")
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", default=DEFAULT_ROLE, help=f"the API's role (default {DEFAULT_ROLE})")
    parser.add_argument("--host", help="host for the printed URL (default: Neon's -pooler host for the owner's)")
    parser.add_argument("--grants-only", action="store_true",
                        help="apply the grants, keep the password, print no URL")
    args = parser.parse_args(argv)
    owner_url = os.environ.get("DATABASE_URL")
    if not owner_url:
        print("DATABASE_URL must name the owner's (direct) connection string", file=sys.stderr)
        return 2
    password = "" if args.grants_only else secrets.token_urlsafe(32)
    db = Database(DatabaseSettings.from_url(owner_url), timeout=30, application_name="3d-ultra-db-role")
    try:
        tables = apply_role(db, args.role, password)
    except RoleRefused as exc:
        print(f"db_role: {exc}", file=sys.stderr)
        return 2
    finally:
        db.close()
    for table, privileges in tables.items():
        print(f"  {table}: {', '.join(privileges) or 'none'}", file=sys.stderr)
    unexpected = {t: p for t, p in tables.items() if t != "schema_migrations" and sorted(p) != sorted(DML)}
    if tables.get("schema_migrations") or unexpected:
        print(f"db_role: role {args.role} holds other privileges than DML on the app's tables: {unexpected or tables}",
              file=sys.stderr)
        return 2
    print(f"role {args.role}: {', '.join(DML)} on {len(tables) - 1} table(s) of schema public (and on those later "
          "migrations create), nothing on schema_migrations, no CREATE" +
          ("" if password else "; password unchanged"), file=sys.stderr)
    if password:
        url = role_url(owner_url, args.role, password, args.host)
        DatabaseSettings.from_url(url)  # what the functions will parse
        print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
