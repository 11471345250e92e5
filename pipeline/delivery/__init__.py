"""Delivering to the providers: the dispatcher, its provider lanes (rate limit, pauses, breaker)
and the outcomes it records.
"""
