"""Benchmarks of the whole pipeline on this machine: ``make bench`` runs them all (see README.md)."""
