"""row counts: articles, matches per tier and alerts per status counted by triggers as rows change

`monitor status` and /metrics read these few rows instead of counting whole tables. Triggers,
not the repositories, keep them: every path that writes (polls, matching, the outbox,
retention, bulk loads, a hand-typed DELETE) is counted, in the writer's own transaction.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
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
# PostgreSQL: concurrent writers add to different rows ("slots", summed on read), so none waits
# for another's counter row until commit. SQLite has one writer at a time: slot 0 only.
SLOTS = 8

# No ':' or '%' in these statements: SQLAlchemy's text() and the driver would read them as
# parameters.

# The slot a transaction adds to for one key: the first, from pid mod SLOTS on, whose
# transaction-scoped advisory lock (the two-integer form; the application's own locks use the
# one-bigint form, a separate key space) it holds already or can take at once. Only the holder
# writes that counter row, so a writer never waits for another's: two transactions adding to
# several keys in opposite orders would otherwise deadlock on them. Slots past SLOTS appear
# only when more than SLOTS transactions write one key at once.
_PG_SLOT = f"""
CREATE FUNCTION row_counts_slot(counted text, value text) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    lock_key integer := hashtext(counted || '/' || value);
    slot integer := mod(pg_backend_pid(), {SLOTS});
BEGIN
    WHILE NOT pg_try_advisory_xact_lock(lock_key, slot) LOOP
        slot := slot + 1;
    END LOOP;
    RETURN slot;
END
$$
"""


def _postgres_function(table: str, column: str | None) -> str:
    """The trigger function of one table: statement-level, so a bulk insert or a retention batch
    adds to each counter once, from the transition tables. Static SQL, one function per table:
    PL/pgSQL keeps its plans, where a generic function with EXECUTE planned every statement."""
    key = column or "''"
    inserted, deleted = f'SELECT {key} AS key, 1 AS d FROM new_rows', f'SELECT {key} AS key, -1 AS d FROM old_rows'

    def add(changes: str) -> str:
        # An update that leaves the counted column alone sums to 0 per key and writes nothing.
        return f"""FOR change IN SELECT key, sum(d) AS n FROM ({changes}) AS changes
                   GROUP BY key HAVING sum(d) <> 0 LOOP
            INSERT INTO row_counts AS c (name, key, slot, n)
            VALUES ('{table}', change.key, row_counts_slot('{table}', change.key), change.n)
            ON CONFLICT (name, key, slot) DO UPDATE SET n = c.n + excluded.n;
        END LOOP;"""

    return f"""
CREATE FUNCTION row_counts_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    change record;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM row_counts WHERE name = '{table}';
    ELSIF TG_OP = 'INSERT' THEN
        {add(inserted)}
    ELSIF TG_OP = 'DELETE' THEN
        {add(deleted)}
    ELSE
        {add(f'{inserted} UNION ALL {deleted}')}
    END IF;
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
        op.execute(sa.text(_PG_SLOT))
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
        for table in COUNTED:
            op.execute(sa.text(f'DROP FUNCTION row_counts_{table}()'))
        op.execute(sa.text('DROP FUNCTION row_counts_slot(text, text)'))
    op.drop_table('row_counts')


def _trigger_names(table: str, column: str | None, postgres: bool) -> list[str]:
    operations = ['insert', 'delete'] + (['update'] if column else []) + (['truncate'] if postgres else [])
    return [f'row_counts_{table}_{operation}' for operation in operations]


def _postgres_triggers(table: str, column: str | None) -> list[str]:
    name = f'row_counts_{table}'
    apply = f'FOR EACH STATEMENT EXECUTE FUNCTION {name}()'
    statements = [
        _postgres_function(table, column),
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
