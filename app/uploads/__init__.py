"""The ways in: multipart, tus, direct uploads, and finishing what they stored."""
