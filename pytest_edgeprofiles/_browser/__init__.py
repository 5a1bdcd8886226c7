"""Browsers we start on profiles: flags, sessions to attach to, starting ahead, stopping,
and the one owner of a process's browsers. Knows nothing of pytest."""
