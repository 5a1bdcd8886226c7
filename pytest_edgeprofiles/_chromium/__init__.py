"""What we know of Chromium-family browsers: where they are installed, what a user data dir
holds, and which processes run on one. Knows nothing of pytest or of the profile library."""
