"""tap-square: Singer tap for the Square API (a seller's shops: point of sale)."""
