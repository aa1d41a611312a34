"""Vectors and time to interests and rankings: plain code, no Kafka, no text models."""
