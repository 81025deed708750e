"""Assist: self-service and surges — the knowledge base and its help center, the bot that answers
a new conversation before a human or hands it over, agent assist, and incident detection."""
