"""Multi-objective search: objectives, Pareto tools, strategies and the resumable runner."""
