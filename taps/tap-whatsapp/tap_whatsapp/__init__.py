"""tap-whatsapp: WhatsApp Business Cloud API webhook events, as a Singer tap."""
