"""Tools built on the library: model specs in TOML (`spec`), per-layer summaries (`summary`), the
conformance check for plugin authors (`conformance`) and pictures of what a network computes
(`pictures`). The library never needs them; the CLI and users do."""
