"""Performance benchmarks of the compendium (numbers go to benchmarks/REPORT.md, never into tests)."""
