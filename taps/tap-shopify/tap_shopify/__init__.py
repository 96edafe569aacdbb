"""tap-shopify: Singer tap for the Shopify GraphQL Admin API (customers, orders, abandoned
checkouts, products, locations)."""
