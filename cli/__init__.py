"""The `fusion` command: composes the command groups the other packages define. No logic of its own."""
