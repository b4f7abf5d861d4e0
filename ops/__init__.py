"""Operator commands: bucket set-up and database migrations, for local stacks and production alike."""
