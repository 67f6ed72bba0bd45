"""Registered loggers (see ablate.LOGGERS for the contract): experiment trackers a study writes its trials to."""
