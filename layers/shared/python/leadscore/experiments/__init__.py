"""A/B experiments between scorers (rules, the champion, stored model versions).

`definition`: the record, its one check and the per-contact assignment; `store`: where
experiments live (next to the champion pointer); `results`: what an experiment showed.
"""
