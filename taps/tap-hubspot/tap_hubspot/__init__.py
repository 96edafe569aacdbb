"""tap-hubspot: the HubSpot CRM API v3 as a Singer tap, for omnicanal."""
