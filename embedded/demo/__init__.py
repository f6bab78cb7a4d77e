"""The built-in demo Celery app that Stalk runs when no -A is given."""
