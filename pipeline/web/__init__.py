"""The worker's operations views, on Faust's web server (the app autodiscovers this package).

Each module registers its pages (and any timer or agent they need) on the app at import, as
``agents/`` modules do; nothing else imports them.
"""
