"""Tests of the shared feature extractor and the small shared rules."""
