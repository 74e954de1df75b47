"""The shared package: one copy of every rule, imported by training and by every function."""
