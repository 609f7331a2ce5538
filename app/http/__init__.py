"""The HTTP layer: middleware, routing, errors as HAL, representers, serving."""
