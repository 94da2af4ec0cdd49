"""Edge and cloud partition servers: a dataplane independent of its HTTP and NATS entrypoints."""
