"""Routers per area: auth (public), home (teacher), jobs (analyst), admin (admin)."""
