"""The Fusion language: pydantic models and loaders. Imports nothing else of Fusion's."""
