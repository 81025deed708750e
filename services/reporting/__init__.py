"""Reporting: every domain event a metric needs, stored once, folded into per-interval rollups."""
