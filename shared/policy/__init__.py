"""The programme policy and the vocabulary every capability is configured with: the loader, data contracts,
generalisation, and retention and disclosure rules as value types.
"""
