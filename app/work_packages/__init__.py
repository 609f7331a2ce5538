"""Work packages: the container type affix serves itself, its lists and forms."""
