"""Kafka plumbing: the consumer transport, the stage loop and producing, tables and their rows, the
topic catalog and admin, short-lived clients.
"""
