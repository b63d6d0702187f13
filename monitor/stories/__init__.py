"""Stories: articles from several outlets telling one thing, found, followed and promoted."""
