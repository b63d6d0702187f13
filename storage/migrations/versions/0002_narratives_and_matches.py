"""narratives, narrative vectors, article passages and matches

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "narratives",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("disproof", sa.Text(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("countries", sa.JSON(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_narratives")),
    )
    op.create_table(
        "narrative_vectors",
        sa.Column("narrative_id", sa.String(length=200), nullable=False),
        sa.Column("model_id", sa.String(length=300), nullable=False),
        sa.Column("row", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["narrative_id"], ["narratives.id"], ondelete="CASCADE",
            name=op.f("fk_narrative_vectors_narrative_id_narratives"),
        ),
        sa.PrimaryKeyConstraint("narrative_id", "model_id", "row", name=op.f("pk_narrative_vectors")),
    )
    op.create_index(
        op.f("ix_narrative_vectors_model_id_narrative_id_row"), "narrative_vectors",
        ["model_id", "narrative_id", "row"],
    )
    op.create_table(
        "article_passages",
        sa.Column("article_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_id", sa.String(length=300), nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], ondelete="CASCADE",
            name=op.f("fk_article_passages_article_id_articles"),
        ),
        sa.PrimaryKeyConstraint("article_id", "model_id", "idx", name=op.f("pk_article_passages")),
    )
    op.create_index(
        op.f("ix_article_passages_model_id_article_id"), "article_passages", ["model_id", "article_id"]
    )
    op.create_table(
        "matches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("article_id", sa.Integer(), nullable=False),
        sa.Column("narrative_id", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("tier", sa.String(length=10), nullable=False),
        sa.Column("passage", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("model_id", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["article_id"], ["articles.id"], name=op.f("fk_matches_article_id_articles")
        ),
        sa.ForeignKeyConstraint(
            ["narrative_id"], ["narratives.id"], name=op.f("fk_matches_narrative_id_narratives")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matches")),
        sa.UniqueConstraint("article_id", "narrative_id", name=op.f("uq_matches_article_id_narrative_id")),
    )
    op.create_index(op.f("ix_matches_created_at"), "matches", ["created_at"])
    op.create_index(op.f("ix_matches_narrative_id"), "matches", ["narrative_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_matches_narrative_id"), table_name="matches")
    op.drop_index(op.f("ix_matches_created_at"), table_name="matches")
    op.drop_table("matches")
    op.drop_index(op.f("ix_article_passages_model_id_article_id"), table_name="article_passages")
    op.drop_table("article_passages")
    op.drop_index(op.f("ix_narrative_vectors_model_id_narrative_id_row"), table_name="narrative_vectors")
    op.drop_table("narrative_vectors")
    op.drop_table("narratives")
