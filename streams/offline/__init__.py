"""Offline tools: data sets and their replay, evaluation and its report, training and fine-tuning."""
