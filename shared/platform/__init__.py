"""The ground every capability stands on: settings, storage access (the only module that talks to Azure Storage), the
audit log, callers and roles, and CSV safety.
"""
