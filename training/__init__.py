"""Training feed-forward style networks (torch + Lightning)."""
