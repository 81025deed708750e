"""Surges: live detection of many customers reporting the same problem at once, across channels and
languages (detector.py), a seeded generator of simulated support traffic with injected bursts
(streams.py) and the evaluation of one over the other (evaluate.py)."""
