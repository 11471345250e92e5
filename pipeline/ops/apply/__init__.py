"""The applier: changes made at the platforms (``contacts.changes.inbound``) into the contacts table."""
