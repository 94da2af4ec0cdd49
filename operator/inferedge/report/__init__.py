"""Human-readable reports of threshold sweeps: Markdown tables and PNG plots."""
