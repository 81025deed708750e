"""The agents service: agents and their presence, conversations and their messages, the desk."""
