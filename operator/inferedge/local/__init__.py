"""Running pipeline steps on this machine: the CLI's step commands and `inferedge run`."""
