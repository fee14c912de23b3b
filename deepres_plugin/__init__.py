"""DeepRes plugin."""
