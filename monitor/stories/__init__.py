"""Stories: articles from several outlets telling the same thing, found, followed and promoted (see flow.py)."""
