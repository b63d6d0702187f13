"""row counts: articles, matches per tier and alerts per status counted by triggers as rows change

`monitor status` and /metrics read these few rows instead of counting whole tables. Triggers,
not the repositories, keep them: every path that writes (polls, matching, the outbox,
retention, bulk loads, a hand-typed DELETE) is counted, in the writer's own transaction.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# Table -> the column counted per value; None counts the whole table under the key ''.
COUNTED: dict[str, str | None] = {'articles': None, 'matches': 'tier', 'alerts': 'status'}
# PostgreSQL: each connection adds to slot pid mod SLOTS, so concurrent writers seldom wait
# for one another's counter row until commit. SQLite has one writer at a time: slot 0 only.
SLOTS = 8

# No ':' or '%' in these statements: SQLAlchemy's text() and the driver would read them as
# parameters. One function serves every counted table: the counted column is the trigger's
# argument, the table its TG_TABLE_NAME. Statement-level, so a bulk insert or a retention
# batch updates each counter once, from the transition tables.
_PG_FUNCTION = f"""
CREATE FUNCTION row_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    counted text := coalesce(quote_ident(TG_ARGV[0]), quote_literal(''));
    changes text;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM row_counts WHERE name = TG_TABLE_NAME;
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        changes := 'SELECT ' || counted || ' AS key, 1 AS d FROM new_rows';
    ELSIF TG_OP = 'DELETE' THEN
        changes := 'SELECT ' || counted || ' AS key, -1 AS d FROM old_rows';
    ELSE
        changes := 'SELECT ' || counted || ' AS key, 1 AS d FROM new_rows UNION ALL SELECT '
                   || counted || ', -1 FROM old_rows';
    END IF;
    -- An update that leaves the counted column alone sums to 0 per key and writes nothing.
    EXECUTE 'INSERT INTO row_counts AS c (name, key, slot, n) SELECT ' || quote_literal(TG_TABLE_NAME)
            || ', key, mod(pg_backend_pid(), {SLOTS}), sum(d) FROM (' || changes || ') AS changes'
            || ' GROUP BY key HAVING sum(d) <> 0'
            || ' ON CONFLICT (name, key, slot) DO UPDATE SET n = c.n + excluded.n';
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table('row_counts',
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=20), nullable=False),
    sa.Column('slot', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', 'key', 'slot', name=op.f('pk_row_counts'))
    )
    postgres = op.get_bind().dialect.name == 'postgresql'
    if postgres:
        op.execute(sa.text(_PG_FUNCTION))
    # Triggers first, counts after: on PostgreSQL CREATE TRIGGER locks each table against
    # writes until this transaction commits, so no row lands between the count and its trigger.
    # (SQLite: the migration holds the one write lock throughout.)
    for table, column in COUNTED.items():
        for statement in (_postgres_triggers if postgres else _sqlite_triggers)(table, column):
            op.execute(sa.text(statement))
    for table, column in COUNTED.items():
        counts = f'{column}, 0, count(*) FROM {table} GROUP BY {column}' if column else \
            f"'', 0, count(*) FROM {table}"
        op.execute(sa.text(f"INSERT INTO row_counts (name, key, slot, n) SELECT '{table}', {counts}"))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for table, column in COUNTED.items():
        for name in _trigger_names(table, column, postgres):
            op.execute(sa.text(f'DROP TRIGGER {name} ON {table}' if postgres else f'DROP TRIGGER {name}'))
    if postgres:
        op.execute(sa.text('DROP FUNCTION row_counts_apply()'))
    op.drop_table('row_counts')


def _trigger_names(table: str, column: str | None, postgres: bool) -> list[str]:
    operations = ['insert', 'delete'] + (['update'] if column else []) + (['truncate'] if postgres else [])
    return [f'row_counts_{table}_{operation}' for operation in operations]


def _postgres_triggers(table: str, column: str | None) -> list[str]:
    argument = f"'{column}'" if column else ''
    apply = f'FOR EACH STATEMENT EXECUTE FUNCTION row_counts_apply({argument})'
    name = f'row_counts_{table}'
    statements = [
        f'CREATE TRIGGER {name}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows {apply}',
        f'CREATE TRIGGER {name}_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows {apply}',
        f'CREATE TRIGGER {name}_truncate AFTER TRUNCATE ON {table} {apply}',
    ]
    if column:
        # Transition tables rule out "UPDATE OF column": every update fires, and one that
        # leaves the column alone adds nothing (see the function).
        statements.append(f'CREATE TRIGGER {name}_update AFTER UPDATE ON {table} '
                          f'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows {apply}')
    return statements


def _sqlite_triggers(table: str, column: str | None) -> list[str]:
    def add(row: str, delta: int) -> str:
        key = f'{row}.{column}' if column else "''"
        return (f"INSERT INTO row_counts (name, key, slot, n) VALUES ('{table}', {key}, 0, {delta}) "
                f"ON CONFLICT (name, key, slot) DO UPDATE SET n = n + excluded.n;")

    name = f'row_counts_{table}'
    statements = [
        f'CREATE TRIGGER {name}_insert AFTER INSERT ON {table} BEGIN {add("new", 1)} END',
        f'CREATE TRIGGER {name}_delete AFTER DELETE ON {table} BEGIN {add("old", -1)} END',
    ]
    if column:
        statements.append(f'CREATE TRIGGER {name}_update AFTER UPDATE OF {column} ON {table} '
                          f'WHEN old.{column} IS NOT new.{column} BEGIN {add("old", -1)} {add("new", 1)} END')
    return statements
