"""Weight sharing: the supernet, its training, and the phases a weight-sharing search runs before its children."""
