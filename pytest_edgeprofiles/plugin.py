"""pytest glue: options, fixtures and hooks around ProfileManager."""
