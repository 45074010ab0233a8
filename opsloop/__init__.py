"""opsloop: incident intelligence for SREs (observe -> reason -> decide -> act)."""

__version__ = "0.1.0"
