"""Customer service: support tickets, intent models with hand-off, answers, the reply endpoint."""
