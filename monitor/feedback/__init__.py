"""Analysts' feedback on alerts: labels, mutes, learned examples and calibration."""
