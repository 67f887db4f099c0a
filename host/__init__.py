"""Everything that runs on one host: OSTree trees, the systemd driver, the engine client, the agent."""
