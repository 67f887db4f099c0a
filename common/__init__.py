"""Side-effect plumbing shared by host/, orchestrator/ and lab/: the one command runner. Imports only `specs`."""
