"""feedback: labels with history, narrative mutes, learned examples, calibration

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_CURRENT = sa.text("ended_at IS NULL")


def upgrade() -> None:
    op.create_table('feedback_labels',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('article_id', sa.Integer(), nullable=False),
    sa.Column('narrative_id', sa.String(length=200), nullable=False),
    sa.Column('label', sa.String(length=20), nullable=False),
    sa.Column('user', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=200), nullable=True),
    sa.Column('ended_how', sa.String(length=10), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_feedback_labels_alert_id_alerts')),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], name=op.f('fk_feedback_labels_article_id_articles')),
    sa.ForeignKeyConstraint(['narrative_id'], ['narratives.id'],
                            name=op.f('fk_feedback_labels_narrative_id_narratives')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_labels'))
    )
    op.create_index('uq_feedback_labels_current', 'feedback_labels', ['alert_id'], unique=True,
                    sqlite_where=_CURRENT, postgresql_where=_CURRENT)
    op.create_index(op.f('ix_feedback_labels_alert_id'), 'feedback_labels', ['alert_id'])
    op.create_index(op.f('ix_feedback_labels_narrative_id_at'), 'feedback_labels', ['narrative_id', 'at'])
    op.create_table('narrative_mutes',
    sa.Column('narrative_id', sa.String(length=200), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('muted_by', sa.String(length=200), nullable=False),
    sa.Column('muted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['narrative_id'], ['narratives.id'], ondelete='CASCADE',
                            name=op.f('fk_narrative_mutes_narrative_id_narratives')),
    sa.PrimaryKeyConstraint('narrative_id', name=op.f('pk_narrative_mutes'))
    )
    op.create_table('learned_examples',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('narrative_id', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('label_id', sa.Integer(), nullable=True),
    sa.Column('alert_id', sa.Integer(), nullable=True),
    sa.Column('added_by', sa.String(length=200), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['narrative_id'], ['narratives.id'], ondelete='CASCADE',
                            name=op.f('fk_learned_examples_narrative_id_narratives')),
    sa.ForeignKeyConstraint(['label_id'], ['feedback_labels.id'],
                            name=op.f('fk_learned_examples_label_id_feedback_labels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_learned_examples'))
    )
    op.create_index(op.f('ix_learned_examples_narrative_id_removed_at'), 'learned_examples',
                    ['narrative_id', 'removed_at'])
    op.create_table('calibration',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('labels', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_calibration'))
    )


def downgrade() -> None:
    op.drop_table('calibration')
    op.drop_index(op.f('ix_learned_examples_narrative_id_removed_at'), table_name='learned_examples')
    op.drop_table('learned_examples')
    op.drop_table('narrative_mutes')
    op.drop_index(op.f('ix_feedback_labels_narrative_id_at'), table_name='feedback_labels')
    op.drop_index(op.f('ix_feedback_labels_alert_id'), table_name='feedback_labels')
    op.drop_index('uq_feedback_labels_current', table_name='feedback_labels')
    op.drop_table('feedback_labels')
