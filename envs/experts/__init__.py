"""Scripted expert policies that generate demonstrations."""
