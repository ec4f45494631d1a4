"""Deleting what is past retention: the purge and its deletion records, and legal holds that stop it."""
