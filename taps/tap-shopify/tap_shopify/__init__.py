"""tap-shopify: Singer tap for the Shopify Admin REST API (customers, orders)."""
