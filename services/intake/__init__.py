"""Intake: the stateless edge. Channel adapters verify and normalize inbound traffic, publish it
(confirmed) before answering 2xx, and send agents' replies back out through each channel."""
