"""Users, API keys, projects and permissions."""
