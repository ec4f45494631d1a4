"""From a partner's drop zone to curated Parquet: events, file formats, the row and columnar readers, the pipeline,
curated storage, receipts, the ledger and the drop zones themselves.
"""
