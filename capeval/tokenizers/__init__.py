"""Tokenisers, one per module; each is run once per dataset over every unique caption."""
