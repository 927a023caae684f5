"""The streaming framework: plugin protocol, config models, chain loading and the concurrent pipeline."""
