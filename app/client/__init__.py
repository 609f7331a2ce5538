"""``affix upload``: the client side of affix's ways in."""
