# The asv suite (benchmarks/asv_bench/, run by `asv run`) is not a pytest-benchmark module.
collect_ignore = ["asv_bench"]
