"""Tests for confluence_assets (pytest)."""
