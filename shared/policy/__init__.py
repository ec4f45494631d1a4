"""The programme policy and the vocabulary every capability is configured with: the policy's document as pydantic
models (`models`, whose JSON Schema `schema` publishes), the loader that checks it and builds the value types, data
contracts, generalisation, and retention and disclosure rules as value types.
"""
