"""Shared helpers for the detection and segmentation course."""
