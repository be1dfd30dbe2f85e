"""API tokens: hashed secrets that let a tool act as a user, and the DRF authentication that reads them."""
