"""The web portal (FastAPI): auth, audit, job pages, admin pages; `create_app()` in portal.app."""
