"""Delivering a finished run: clip selection per speaker, Fish Audio submission and dataset exports."""
