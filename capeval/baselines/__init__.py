"""Built-in baseline captioners: MM-SeR (Song et al.) trained on the synthetic shapes dataset, and a weak rule."""
