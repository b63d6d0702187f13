"""stories

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.create_table('stories',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('representative_id', sa.Integer(), nullable=True),
    sa.Column('terms', sa.JSON(), nullable=False),
    sa.Column('outlets', sa.JSON(), nullable=False),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sources', sa.Integer(), nullable=False),
    sa.Column('growth', sa.Integer(), nullable=False),
    sa.Column('narrative_id', sa.String(length=200), nullable=True),
    sa.Column('narrative_score', sa.Float(), nullable=True),
    sa.Column('known_alert', sa.Boolean(), nullable=False),
    sa.Column('emerging', sa.Boolean(), nullable=False),
    sa.Column('emerging_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('merged_into', sa.Integer(), nullable=True),
    sa.Column('merged_from', sa.JSON(), nullable=False),
    sa.Column('split_from', sa.Integer(), nullable=True),
    sa.Column('promoted_to', sa.String(length=200), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stories'))
    )
    op.create_index(op.f('ix_stories_status_last_seen'), 'stories', ['status', 'last_seen'], unique=False)
    op.create_table('story_articles',
    sa.Column('article_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('story_id', sa.Integer(), nullable=True),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], name=op.f('fk_story_articles_article_id_articles'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['story_id'], ['stories.id'], name=op.f('fk_story_articles_story_id_stories')),
    sa.PrimaryKeyConstraint('article_id', name=op.f('pk_story_articles'))
    )
    op.create_index(op.f('ix_story_articles_story_id'), 'story_articles', ['story_id'], unique=False)
    op.create_table('story_history',
    sa.Column('story_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sources', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['story_id'], ['stories.id'], name=op.f('fk_story_history_story_id_stories')),
    sa.PrimaryKeyConstraint('story_id', 'hour', name=op.f('pk_story_history'))
    )
    lock = op.create_table('story_lock',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_story_lock'))
    )
    op.bulk_insert(lock, [{'id': 1, 'updated_at': None}])
    # A Slack post about an emerging story names its story (no foreign key: SQLite cannot add one).
    op.add_column('alerts', sa.Column('story_id', sa.Integer(), nullable=True))

def downgrade() -> None:
    op.drop_column('alerts', 'story_id')
    op.drop_table('story_lock')
    op.drop_table('story_history')
    op.drop_index(op.f('ix_story_articles_story_id'), table_name='story_articles')
    op.drop_table('story_articles')
    op.drop_index(op.f('ix_stories_status_last_seen'), table_name='stories')
    op.drop_table('stories')
