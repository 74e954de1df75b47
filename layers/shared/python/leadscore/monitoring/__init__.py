"""Watching the served model: drift against its training data, importance, health pages."""
