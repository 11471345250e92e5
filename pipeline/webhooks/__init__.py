"""Webhook receivers' logic, without the web server: proving the sender, reading each platform's
notification into ``InboundChange`` messages, finding our record id (``docs/webhooks.md``).
The views that serve them are in ``pipeline.web.webhooks``."""
