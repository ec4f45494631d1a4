"""Everything that leaves the platform: disclosure control, anonymised reports, research extracts and the analysis
reads they share.
"""
