"""The composition room: the one place outside `leadscore.adapters` that builds adapters,
scorers and HighLevel dependencies from the settings.

Everything below it (the domain packages) names what it needs as a protocol or a parameter;
the function folders (`functions/*/app.py`) and the tools ask this package for ready objects,
each built once per container.
"""
