"""Fraud models: feature functions, training and scoring."""
