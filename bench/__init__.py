"""nbpar's benchmarks against its peers: python -m bench --help."""
