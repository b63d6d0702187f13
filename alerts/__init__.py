"""Everything sent outward: Slack alerts and email digests."""
