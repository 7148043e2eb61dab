"""edgebench: export, check and benchmark PyTorch models for edge runtimes."""
