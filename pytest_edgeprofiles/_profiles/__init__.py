"""The profile library: making, cloning, capping, handing out and removing profiles.

Knows nothing of pytest, the plugin or the browsers the plugin starts."""
