"""Model sources: registry of YAML specs, export-friendly wrappers, weights, inputs."""
