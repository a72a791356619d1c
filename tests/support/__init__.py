"""What the tests share besides fixtures: paths, servers, charts, the cluster, the browser."""
