"""What a station needs to be rebuilt or moved: its keys (``station keys``) and a consistent copy
of its data folder (``station backup`` and ``station restore``)."""
