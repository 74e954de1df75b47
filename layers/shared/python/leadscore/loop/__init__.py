"""Closing the loop: snapshots of what was scored, outcomes from HighLevel, the point-in-time
labelled export that feeds retraining, the backfill of existing contacts and engagement
counters from messages. Pure logic; AWS lives behind ``leadscore.adapters``."""
