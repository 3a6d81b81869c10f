"""Networks from architectures: layers, blocks, cells, build, analytic cost, references, summaries, export, checkpoints."""
