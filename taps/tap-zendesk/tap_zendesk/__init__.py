"""tap-zendesk: Singer tap for the Zendesk Support API (a retailer's help desk)."""
