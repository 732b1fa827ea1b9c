"""Offline evaluation: labelled data, metrics, the NAB scorer, reports; apart from the models."""
