"""retention: de-duplication keys outlive their articles; indexes for pruning and for a year of rows

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A pruned article leaves its (feed, guid) keys behind with no article: an old item still
    # in its feed is then recognised instead of stored again as new.
    with op.batch_alter_table('article_sources', schema=None) as batch_op:
        batch_op.alter_column('article_id', existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_articles_fetched_at'), ['fetched_at'], unique=False)
        # Partial: only copies, so "duplicate_of IS NULL" (the originals) is never read through it.
        batch_op.create_index(batch_op.f('ix_articles_duplicate_of'), ['duplicate_of'], unique=False,
                              sqlite_where=sa.text('duplicate_of IS NOT NULL'),
                              postgresql_where=sa.text('duplicate_of IS NOT NULL'))
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_parent_id'), ['parent_id'], unique=False)
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('article_count', sa.Integer(), server_default='0', nullable=False))
    op.execute(sa.text('UPDATE feeds SET article_count = (SELECT count(*) FROM article_sources '
                       'WHERE article_sources.feed_id = feeds.id)'))


def downgrade() -> None:
    with op.batch_alter_table('feeds', schema=None) as batch_op:
        batch_op.drop_column('article_count')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_parent_id'))
    with op.batch_alter_table('articles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_articles_duplicate_of'))
        batch_op.drop_index(batch_op.f('ix_articles_fetched_at'))
    op.execute(sa.text('DELETE FROM article_sources WHERE article_id IS NULL'))
    with op.batch_alter_table('article_sources', schema=None) as batch_op:
        batch_op.alter_column('article_id', existing_type=sa.Integer(), nullable=False)
