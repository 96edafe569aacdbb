"""tap-vtex: Singer tap for VTEX (OMS orders with their detail, Master Data CL profiles)."""
