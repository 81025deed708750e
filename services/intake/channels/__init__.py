"""One module per channel: how its traffic is verified, normalized and sent back out.

A channel's sender implements `Sender` (see base.py); intake consumes that channel's outbound
queue and hands each agent reply to it. Adding a channel touches only this folder and the
intake app's route table.
"""
