"""tap-mailchimp: the Mailchimp Marketing API v3 as a Singer tap (omnicanal)."""
