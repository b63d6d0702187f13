"""alert outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('channel', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=True),
    sa.Column('narrative_id', sa.String(length=200), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('feed_id', sa.String(length=200), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('ts', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], name=op.f('fk_alerts_article_id_articles')),
    sa.ForeignKeyConstraint(['narrative_id'], ['narratives.id'], name=op.f('fk_alerts_narrative_id_narratives')),
    sa.ForeignKeyConstraint(['parent_id'], ['alerts.id'], name=op.f('fk_alerts_parent_id_alerts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('key', name=op.f('uq_alerts_key'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_article_id'), ['article_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_narrative_id_channel_created_at'), ['narrative_id', 'channel', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_status_next_attempt_at'), ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_status_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_alerts_narrative_id_channel_created_at'))
        batch_op.drop_index(batch_op.f('ix_alerts_article_id'))

    op.drop_table('alerts')
