"""People's rights under UK GDPR: the request register, deadlines, access packs and the service that carries requests
out.
"""
