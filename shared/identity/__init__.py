"""Who a row is about, without holding who they are: the root key, pseudonyms, the person (subject) index and the
suppression register.
"""
