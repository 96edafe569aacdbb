"""tap-instagram: Singer tap for an Instagram professional account (Meta Graph API)."""
